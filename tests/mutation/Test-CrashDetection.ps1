#requires -Version 7.4
<#
.SYNOPSIS
    Proves that the Test task's accounting reports a crashed xunit host as a failure.
.DESCRIPTION
    Runs tests/mutation/CrashingHost (two passing tests, then Environment.FailFast, then one that never runs) through
    the same Invoke-XunitTests that build.ps1 uses, and checks that the run is counted as failed and says why.
    Exits 0 when the crash was detected, 1 when it would have been reported as a pass.
.EXAMPLE
    dotnet pwsh ./tests/mutation/Test-CrashDetection.ps1
#>
[CmdletBinding()]
param([string] $Configuration = 'Release')

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$root = Split-Path (Split-Path $PSScriptRoot)
. (Join-Path $root 'tests/TestAccounting.ps1')

$run = Invoke-XunitTests -Project (Join-Path $PSScriptRoot 'CrashingHost/CrashingHost.csproj') -Configuration $Configuration `
    -ResultsDirectory (Join-Path $root '.build/crash-check') -ConsoleVerbosity minimal
$run | Format-List Runner, Passed, Failed, Discovered, Executed, Problems | Out-String | Write-Host

$checks = [ordered]@{
    'the run counts as failed'                 = $run.Failed -gt 0
    'discovery listed all four tests'          = $run.Discovered -eq 4
    'a problem names the crashed host'         = [bool]($run.Problems -match 'crash|abort')
    'a problem says tests did not run'         = [bool]($run.Problems -match 'of 4 discovered tests ran')
}
$missed = @($checks.GetEnumerator() | Where-Object { -not $_.Value } | ForEach-Object Key)
if ($missed) {
    Write-Host "Crash detection FAILED: $($missed -join '; ')" -ForegroundColor Red
    exit 1
}
Write-Host 'Crash detection works: a host that dies mid-run is reported as failed.' -ForegroundColor Green
exit 0
