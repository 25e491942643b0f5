# Runs the xunit and Pester suites and counts their results so that a run which did not finish can never read as a
# pass. Dot-sourced by build.ps1 (Test task), tests/mutation/Test-CrashDetection.ps1 and Invoke-MutationCheck.ps1.
#
# A run is a failure, on top of its failed tests, when:
#   xunit  - the trx file is missing or unreadable, the run log says the test host aborted or crashed, dotnet test
#            exited non-zero with no failed test to explain it, or fewer tests ran than discovery listed;
#   Pester - a container (test file) or block failed, a file ran no test at all, or nothing ran.
# Tests that were discovered but never ran are counted as failed.

# Test names as `dotnet test --list-tests` prints them (one per theory row), as a string array; $null when listing failed.
function Get-XunitDiscoveredTests([string] $Project, [string] $Configuration) {
    $listing = [string[]]@(& dotnet test $Project -c $Configuration --nologo --no-build --list-tests 2>&1 | ForEach-Object { "$_" })
    if ($LASTEXITCODE -ne 0) { return $null }
    $start = [array]::FindIndex($listing, [Predicate[string]] { param($line) $line -like 'The following Tests are available:*' })
    $names = if ($start -lt 0) { @() } else { @($listing | Select-Object -Skip ($start + 1) | Where-Object { $_ -match '^\s{4}\S' } | ForEach-Object { $_.Trim() }) }
    , [string[]]$names
}

# Counts of one trx file, the names of failed tests and the run-level errors it records (host crash, abort).
function Read-XunitTrx([string] $TrxPath) {
    $trx = [xml](Get-Content -Raw -LiteralPath $TrxPath)
    # Sections are absent when nothing ran (strict mode): select by local name instead of dotting into them.
    $nodes = { param($name) @($trx.SelectNodes("//*[local-name()='$name']")) }
    $summary = & $nodes 'ResultSummary' | Select-Object -First 1
    $counters = & $nodes 'Counters' | Select-Object -First 1
    if (-not $summary -or -not $counters) { throw "$TrxPath has no result summary." }
    $results = @(& $nodes 'UnitTestResult')
    # Run-level messages: an aborted or crashed host. xunit's own "[FAIL]" line per failed test is not one.
    $runErrors = @(& $nodes 'RunInfo' | Where-Object { $_.GetAttribute('outcome') -in 'Error', 'Failed', 'Aborted' } |
            ForEach-Object { ($_.InnerText.Trim() -split "\r?\n")[0] } | Where-Object { $_ -notmatch '^\[xUnit\.net [^\]]*\].*\[FAIL\]$' })
    [pscustomobject]@{
        Outcome     = $summary.GetAttribute('outcome')
        Passed      = [int]$counters.GetAttribute('passed')
        Failed      = [int]$counters.GetAttribute('failed') + [int]$counters.GetAttribute('error') + [int]$counters.GetAttribute('timeout') + [int]$counters.GetAttribute('aborted')
        # The summary's notExecuted counter stays 0 for xunit's skipped tests; their results say NotExecuted.
        Skipped     = @($results | Where-Object { $_.GetAttribute('outcome') -eq 'NotExecuted' }).Count
        Executed    = $results.Count
        FailedTests = @($results | Where-Object { $_.GetAttribute('outcome') -in 'Failed', 'Error', 'Timeout', 'Aborted' } | ForEach-Object { $_.GetAttribute('testName') })
        RunErrors   = $runErrors
    }
}

<#
.SYNOPSIS
    Runs one xunit test project and returns its counts; Problems lists why the run itself is not trustworthy.
.PARAMETER Filter
    A dotnet test --filter expression; with a filter the discovered-versus-executed check is skipped.
#>
function Invoke-XunitTests {
    param(
        [Parameter(Mandatory)] [string] $Project,
        [Parameter(Mandatory)] [string] $ResultsDirectory,
        [string] $Configuration = 'Release',
        [string] $Filter,
        [string] $ConsoleVerbosity = 'normal',
        # Extra MSBuild arguments for the build (e.g. -p:CkLlmStrict=true).
        [string[]] $BuildProperties = @()
    )
    Remove-Item $ResultsDirectory -Recurse -Force -ErrorAction Ignore
    $problems = [Collections.Generic.List[string]]::new()
    & dotnet build $Project -c $Configuration --nologo -v quiet @BuildProperties | Out-Host
    if ($LASTEXITCODE -ne 0) { throw "Building $Project failed with exit code $LASTEXITCODE." }
    $discovered = if ($Filter) { $null } else { Get-XunitDiscoveredTests $Project $Configuration }
    if (-not $Filter -and $null -eq $discovered) { $problems.Add('listing the tests (dotnet test --list-tests) failed') }

    $arguments = @($Project, '-c', $Configuration, '--nologo', '--no-build', '--logger', 'trx;LogFileName=results.trx',
        '--logger', "console;verbosity=$ConsoleVerbosity", '--results-directory', $ResultsDirectory)
    if ($Filter) { $arguments += '--filter', $Filter }
    & dotnet test @arguments | Out-Host
    $exitCode = $LASTEXITCODE

    $trxPath = Join-Path $ResultsDirectory 'results.trx'
    $run = $null
    if (-not (Test-Path -LiteralPath $trxPath)) { $problems.Add("no trx results were written (dotnet test exit code $exitCode)") }
    else {
        try { $run = Read-XunitTrx $trxPath }
        catch { $problems.Add("the trx results cannot be read: $($_.Exception.Message)") }
    }
    if ($run) {
        foreach ($runError in $run.RunErrors) { $problems.Add("the run log reports: $runError") }
        if ($exitCode -ne 0 -and $run.Failed -eq 0) { $problems.Add("dotnet test exited with code $exitCode but no test failed") }
        if ($null -ne $discovered -and $run.Executed -lt $discovered.Count) {
            $problems.Add("$($run.Executed) of $($discovered.Count) discovered tests ran")
        }
    }
    $passed = if ($run) { $run.Passed } else { 0 }
    $failed = if ($run) { $run.Failed } else { 0 }
    if ($problems.Count -gt 0) {
        # What never ran is a failure; an abnormal run counts at least one.
        $missing = if ($null -ne $discovered -and $run) { $discovered.Count - $run.Executed } elseif ($discovered) { $discovered.Count } else { 0 }
        $failed += [Math]::Max(1, $missing)
    }
    [pscustomobject]@{
        Runner      = 'xunit'
        Passed      = $passed
        Failed      = $failed
        Skipped     = if ($run) { $run.Skipped } else { 0 }
        Discovered  = if ($null -ne $discovered) { $discovered.Count } else { $null }
        Executed    = if ($run) { $run.Executed } else { 0 }
        FailedTests = if ($run) { $run.FailedTests } else { @() }
        Problems    = @($problems)
    }
}

<#
.SYNOPSIS
    Counts an Invoke-Pester -PassThru result; Problems lists failed containers and blocks, empty files and empty runs.
#>
function Measure-PesterRun($Result) {
    if ($null -eq $Result) {
        return [pscustomobject]@{ Runner = 'Pester'; Passed = 0; Failed = 1; Skipped = 0; Discovered = 0; Executed = 0; FailedTests = @(); Problems = @('Invoke-Pester returned no result') }
    }
    $problems = [Collections.Generic.List[string]]::new()
    foreach ($container in @($Result.Containers)) {
        $name = "$($container.Item)"
        if ($container.Result -eq 'Failed' -or $container.ErrorRecord.Count -gt 0) {
            $problems.Add("$name failed outside its tests: $(@($container.ErrorRecord | ForEach-Object { $_.Exception.Message }) -join '; ')")
        }
        elseif ($container.PassedCount + $container.FailedCount + $container.SkippedCount -eq 0) {
            $problems.Add("$name ran no test")
        }
    }
    if ($Result.FailedBlocksCount -gt 0) { $problems.Add("$($Result.FailedBlocksCount) Describe/Context block(s) failed in BeforeAll/AfterAll") }
    if ($Result.NotRunCount -gt 0) { $problems.Add("$($Result.NotRunCount) discovered Pester test(s) did not run") }
    if ($Result.PassedCount + $Result.FailedCount -eq 0) { $problems.Add('no Pester test ran') }
    $failed = $Result.FailedCount + $Result.FailedBlocksCount + $Result.FailedContainersCount + $Result.NotRunCount
    if ($problems.Count -gt 0 -and $failed -eq 0) { $failed = 1 }
    [pscustomobject]@{
        Runner      = 'Pester'
        Passed      = $Result.PassedCount
        Failed      = $failed
        Skipped     = $Result.SkippedCount
        Discovered  = $Result.TotalCount
        Executed    = $Result.PassedCount + $Result.FailedCount
        FailedTests = @($Result.Failed | ForEach-Object ExpandedPath)
        Problems    = @($problems)
    }
}
