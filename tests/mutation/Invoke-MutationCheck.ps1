#requires -Version 7.4
<#
.SYNOPSIS
    Proves the test suite bites: applies deliberate faults to the engine, one at a time, and shows which tests catch each.
.DESCRIPTION
    Copies the repository's files (tracked and untracked, not ignored) to a temporary folder - the working tree is never
    touched - then, for each mutant: restores the pristine sources, applies one fault by an anchored snippet (a pattern
    that no longer matches stops the run with an error naming it), rebuilds the engine tests and runs the targeted ones
    through the same accounting as the Test task. A mutant is caught when a test fails or the test host dies.
    A baseline run of the same targeted tests on the unmutated copy must pass first.
    Results go to the console and to .build/mutation-results.md; the exit code is the number of mutants that survived
    or could not be applied.
.PARAMETER Only
    Names of the mutants to run (default: all).
.EXAMPLE
    nice -n 10 dotnet pwsh ./tests/mutation/Invoke-MutationCheck.ps1
.EXAMPLE
    dotnet pwsh ./tests/mutation/Invoke-MutationCheck.ps1 -Only citation-range, writer-lock
#>
[CmdletBinding()]
param(
    [string[]] $Only,
    [string] $Configuration = 'Release',
    # Keep the temporary copy for inspection.
    [switch] $KeepCopy
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$root = Split-Path (Split-Path $PSScriptRoot)
. (Join-Path $root 'tests/TestAccounting.ps1')

# Each fault: the file, an exact snippet (or a regex when Regex is set), what replaces it, whether every occurrence is
# replaced (otherwise the snippet must occur exactly once), and the xunit filter of the tests expected to notice.
$mutants = @(
    @{
        Name = 'citation-range'; What = "CitationParser reads [n-m] as its first number only (range handling dropped)"
        File = 'src/CkLlm.Engine/Rag/CitationParser.cs'
        Find = 'for (var n = low; n <= high; n++) Add(numbers, n);'; Replace = 'Add(numbers, low);'
        Filter = 'FullyQualifiedName~CitationParser|FullyQualifiedName~RagEndToEnd|FullyQualifiedName~RagEngine'
    }
    @{
        Name = 'skip-gguf-validator'; What = 'LoadedModel.Load hands files the validator rejects to llama.cpp anyway'
        File = 'src/CkLlm.Engine/Model/LoadedModel.cs'
        Find = 'var summary = GgufValidator.Validate(fullPath);'
        Replace = 'GgufModelSummary summary; try { summary = GgufValidator.Validate(fullPath); } catch (GgufFormatException) { summary = new GgufModelSummary(fullPath, "unknown", null, 0, 0, 0, null, new FileInfo(fullPath).Length); }'
        Filter = 'FullyQualifiedName~ModelLoadValidation|FullyQualifiedName~LoadedModel|FullyQualifiedName~GgufFuzz'
    }
    @{
        Name = 'ignore-cancellation'; What = 'The completion loop never checks the cancellation token between tokens'
        File = 'src/CkLlm.Engine/Inference/CompletionEngine.cs'
        Find = 'if (cancellationToken.IsCancellationRequested) { finish = FinishReason.Cancelled; break; }'; Replace = ''; All = $true
        Filter = 'FullyQualifiedName~CompletionEngine|FullyQualifiedName~RagEndToEnd'
    }
    @{
        Name = 'writer-lock'; What = 'The knowledge-base writer lock is taken shared, so two writers both get it'
        File = 'src/CkLlm.Engine/Knowledge/Storage/WriterLock.cs'
        Find = 'FileAccess.ReadWrite, FileShare.None)'; Replace = 'FileAccess.ReadWrite, FileShare.ReadWrite)'
        Filter = 'FullyQualifiedName~KnowledgeStorage'
    }
    @{
        Name = 'skip-defusing'; What = 'RagPromptBuilder.Defuse returns passage text unchanged'
        File = 'src/CkLlm.Engine/Rag/RagPromptBuilder.cs'
        Find = '(public static string Defuse\(string text\)\s*\{)'; Replace = '$1 return text;'; Regex = $true
        Filter = 'FullyQualifiedName~RagPromptBuilder|FullyQualifiedName~RagEngine'
    }
    @{
        Name = 'cite-retrieved-not-given'; What = 'Citations are checked against the passages retrieved, not those that fit in the prompt'
        File = 'src/CkLlm.Engine/Rag/RagEngine.cs'
        Find = 'CitationParser.Classify(result.Text, prompt.Fitted.Passages.Count)'; Replace = 'CitationParser.Classify(result.Text, answer.PassagesRetrieved)'
        Filter = 'FullyQualifiedName~RagEngine|FullyQualifiedName~RagEndToEnd'
    }
    @{
        Name = 'min-score-trusted'; What = 'RagEngine trusts the retriever to apply MinScore (its own filter removed)'
        File = 'src/CkLlm.Engine/Rag/RagEngine.cs'
        Find = '.Where(p => p.Score >= request.MinScore).Take(request.Top)'; Replace = '.Take(request.Top)'
        Filter = 'FullyQualifiedName~RagEngine'
    }
    @{
        Name = 'budget-ignores-max-tokens'; What = 'PassageFitter fills the window without reserving MaxTokens for the answer'
        File = 'src/CkLlm.Engine/Rag/PassageFitter.cs'
        Find = 'var limit = contextSize - maxTokens - safetyMargin;'; Replace = 'var limit = contextSize - safetyMargin;'
        Filter = 'FullyQualifiedName~PassageFitter|FullyQualifiedName~RagEngine|FullyQualifiedName~RagEndToEnd'
    }
)
if ($Only) {
    $unknown = @($Only | Where-Object { $_ -notin $mutants.Name })
    if ($unknown) { throw "Unknown mutant(s): $($unknown -join ', '). Known: $($mutants.Name -join ', ')." }
    $mutants = @($mutants | Where-Object { $_.Name -in $Only })
}

function Set-Mutation([string] $Copy, [hashtable] $Mutant, [string] $Pristine) {
    $path = Join-Path $Copy $Mutant.File
    $isRegex = $Mutant.ContainsKey('Regex') -and $Mutant.Regex
    $pattern = if ($isRegex) { $Mutant.Find } else { [regex]::Escape($Mutant.Find) }
    $count = [regex]::Matches($Pristine, $pattern).Count
    $all = $Mutant.ContainsKey('All') -and $Mutant.All
    if ($count -eq 0 -or ($count -gt 1 -and -not $all)) {
        throw "Mutant '$($Mutant.Name)': the snippet occurs $count times in $($Mutant.File) (expected $(if ($all) { 'at least once' } else { 'exactly once' })). The engine changed: update the pattern. Snippet: $($Mutant.Find)"
    }
    $replacement = if ($isRegex) { $Mutant.Replace } else { $Mutant.Replace.Replace('$', '$$') }
    [IO.File]::WriteAllText($path, [regex]::Replace($Pristine, $pattern, $replacement))
    $count
}

$copy = Join-Path ([IO.Path]::GetTempPath()) "ckllm-mutation-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
Write-Host "==> Copying the repository to $copy (the working tree is not touched)" -ForegroundColor Cyan
$files = @(& git -C $root ls-files --cached --others --exclude-standard)
if ($LASTEXITCODE -ne 0) { throw 'git ls-files failed.' }
foreach ($file in $files) {
    $source = Join-Path $root $file
    if (-not (Test-Path -LiteralPath $source -PathType Leaf)) { continue } # deleted but not yet committed
    $target = Join-Path $copy $file
    New-Item -ItemType Directory -Force (Split-Path $target) | Out-Null
    Copy-Item -LiteralPath $source -Destination $target
}
$project = Join-Path $copy 'tests/CkLlm.Engine.Tests/CkLlm.Engine.Tests.csproj'
$resultsRoot = Join-Path $copy '.build/mutation'

# Every pattern must still apply before anything is built: a stale one is an error, never a silent "caught".
$stale = @(foreach ($mutant in $mutants) {
        try { $null = Set-Mutation $copy $mutant ([IO.File]::ReadAllText((Join-Path $copy $mutant.File))) }
        catch { $_.Exception.Message }
        finally { Copy-Item -LiteralPath (Join-Path $root $mutant.File) -Destination (Join-Path $copy $mutant.File) -Force }
    })
if ($stale) {
    Remove-Item $copy -Recurse -Force -ErrorAction Ignore
    throw "Mutation patterns no longer apply:`n$($stale -join "`n")"
}

$rows = [Collections.Generic.List[object]]::new()
try {
    # The targeted tests must pass on the unmutated engine, or a "catch" would mean nothing.
    $allFilters = ($mutants.Filter -join '|' -split '\|' | Sort-Object -Unique) -join '|'
    Write-Host '==> Baseline: targeted tests on the unmutated copy' -ForegroundColor Cyan
    $baseline = Invoke-XunitTests -Project $project -Configuration $Configuration -Filter $allFilters -ResultsDirectory (Join-Path $resultsRoot 'baseline') -ConsoleVerbosity minimal
    if ($baseline.Failed -gt 0 -or $baseline.Passed -eq 0) {
        throw "Baseline failed ($($baseline.Passed) passed, $($baseline.Failed) failed: $($baseline.FailedTests -join ', ') $($baseline.Problems -join '; ')): fix the suite before checking mutants."
    }
    Write-Host "Baseline: $($baseline.Passed) targeted tests pass." -ForegroundColor Green

    foreach ($mutant in $mutants) {
        $path = Join-Path $copy $mutant.File
        $pristine = [IO.File]::ReadAllText($path)
        try {
            $sites = Set-Mutation $copy $mutant $pristine
            Write-Host "==> Mutant '$($mutant.Name)' ($sites site(s) in $($mutant.File)): $($mutant.What)" -ForegroundColor Cyan
            $run = $null
            try {
                $run = Invoke-XunitTests -Project $project -Configuration $Configuration -Filter $mutant.Filter -ResultsDirectory (Join-Path $resultsRoot $mutant.Name) -ConsoleVerbosity minimal
            }
            catch { $rows.Add([pscustomobject]@{ Mutant = $mutant.Name; What = $mutant.What; Caught = $false; By = "did not build: $($_.Exception.Message)" }); continue }
            $by = @($run.FailedTests | ForEach-Object { $_ -replace '^CkLlm\.Engine\.Tests\.', '' })
            if ($run.Problems) { $by += "test host: $($run.Problems -join '; ')" }
            $rows.Add([pscustomobject]@{ Mutant = $mutant.Name; What = $mutant.What; Caught = $run.Failed -gt 0; By = $by -join '; ' })
        }
        finally { [IO.File]::WriteAllText($path, $pristine) }
    }
}
finally {
    if ($KeepCopy) { Write-Host "Copy kept at $copy" } else { Remove-Item $copy -Recurse -Force -ErrorAction Ignore }
}

$report = @(
    "# Mutation check ($(Get-Date -AsUTC -Format 'yyyy-MM-dd HH:mm') UTC, commit $(git -C $root rev-parse --short HEAD))", ''
    '| Mutant | Fault | Caught | Caught by |', '|---|---|---|---|'
    $rows | ForEach-Object { "| $($_.Mutant) | $($_.What) | $(if ($_.Caught) { 'yes' } else { '**NO**' }) | $($_.By) |" }
)
$reportPath = Join-Path $root '.build/mutation-results.md'
New-Item -ItemType Directory -Force (Split-Path $reportPath) | Out-Null
$report | Set-Content -LiteralPath $reportPath
$report | Write-Host
Write-Host "Written to $reportPath"
$survivors = @($rows | Where-Object { -not $_.Caught })
if ($survivors) { Write-Host "Survived: $($survivors.Mutant -join ', ')" -ForegroundColor Red }
exit $survivors.Count
