#requires -Version 7.4
<#
.SYNOPSIS
    Builds, tests, demonstrates and benchmarks the CkLlm module.
.DESCRIPTION
    Build : publishes the engine (with its native libraries) into out/CkLlm/deps and the cmdlet assembly, manifest,
            format file and generated help into out/CkLlm.
    Test  : Build, then every xunit test (engine) and every Pester test (cmdlets); ends with 'N passed, N failed'.
    Demo  : Build, then runs the main job on embedded defaults.
    Bench : Build, then the benchmarks recorded in docs/benchmarks.md (-BenchArea Completion|Knowledge|FineTune|Ingestion|Soak|Server|Chat|Postgres|Remote).
.EXAMPLE
    dotnet tool restore && dotnet pwsh ./build.ps1 -Task Test
#>
[CmdletBinding()]
param(
    [ValidateSet('Build', 'Test', 'Demo', 'Bench', 'Clean')]
    [string] $Task = 'Build',
    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Release',
    # Demo: a GGUF model to use instead of a generated one.
    [string] $Model,
    # Test: run only Pester files whose name matches this wildcard (e.g. '*Completion*'); xunit is skipped when set.
    [string] $PesterFilter,
    # Bench: which benchmark to run.
    [ValidateSet('All', 'Completion', 'Knowledge', 'FineTune', 'Ingestion', 'Soak', 'Server', 'Chat', 'Postgres', 'Remote')]
    [string] $BenchArea = 'All'
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$Root = $PSScriptRoot
$OutDir = Join-Path $Root 'out'
$ModuleDir = Join-Path $OutDir 'CkLlm'
$BuildDir = Join-Path $Root '.build'
$ToolsDir = Join-Path $BuildDir 'tools'
$PackagesDir = Join-Path $BuildDir 'packages'
$PesterVersion = '5.7.1'
# The test task builds with analyzer warnings as errors (Directory.Build.props, rules in .editorconfig).
$BuildProperties = @(if ($Task -eq 'Test') { '-p:CkLlmStrict=true' })

function Invoke-Native([string] $What, [scriptblock] $Command) {
    Write-Host "==> $What" -ForegroundColor Cyan
    & $Command
    if ($LASTEXITCODE -ne 0) { throw "$What failed with exit code $LASTEXITCODE." }
}

# pwsh from the tool manifest runs as 'dotnet <PSHOME>/pwsh.dll'; a plain pwsh has its own executable.
function Get-PwshCommand {
    $dll = Join-Path $PSHOME 'pwsh.dll'
    if ((Split-Path -Leaf ([Environment]::ProcessPath)) -like 'dotnet*') { return { & ([Environment]::ProcessPath) $dll @args }.GetNewClosure() }
    return { & ([Environment]::ProcessPath) @args }
}

function Invoke-Build {
    Remove-Item $ModuleDir -Recurse -Force -ErrorAction Ignore
    Invoke-Native 'Publish engine' {
        dotnet publish (Join-Path $Root 'src/CkLlm.Engine/CkLlm.Engine.csproj') -c $Configuration -r linux-x64 --self-contained false -o (Join-Path $ModuleDir 'deps') --nologo -v quiet @BuildProperties
    }
    Invoke-Native 'Publish fine-tuning worker' {
        dotnet publish (Join-Path $Root 'src/CkLlm.Worker/CkLlm.Worker.csproj') -c $Configuration -r linux-x64 --self-contained false -o (Join-Path $ModuleDir 'deps') --nologo -v quiet @BuildProperties
    }
    Invoke-Native 'Publish cmdlets' {
        dotnet publish (Join-Path $Root 'src/CkLlm/CkLlm.csproj') -c $Configuration -r linux-x64 --self-contained false -o $ModuleDir --nologo -v quiet @BuildProperties
    }
    Copy-Item (Join-Path $Root 'module/*') $ModuleDir -Recurse -Force
    $helpScript = Join-Path $Root 'docs/cmdlets/New-CkHelp.ps1'
    # In a child pwsh: generating help imports the module, which must not stay loaded in this build process.
    Invoke-Native 'Generate help from docs/cmdlets' {
        & (Get-PwshCommand) -NoProfile -File $helpScript -ModulePath (Join-Path $ModuleDir 'CkLlm.psd1') `
            -DocsPath (Join-Path $Root 'docs/cmdlets') -OutputPath (Join-Path $ModuleDir 'en-US/CkLlm.dll-Help.xml')
    }
    Write-Host "Module built in $ModuleDir"
}

# Test-only dependencies come from the NuGet feed through a download-only project: no hand installs.
function Initialize-TestTools {
    $pesterModule = Join-Path $ToolsDir "Pester/$PesterVersion/Pester.psd1"
    if (-not (Test-Path $pesterModule)) {
        $project = Join-Path $BuildDir 'download/TestTools.csproj'
        New-Item -ItemType Directory -Force (Split-Path $project) | Out-Null
        @"
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>net10.0</TargetFramework></PropertyGroup>
  <ItemGroup>
    <PackageDownload Include="Pester" Version="[$PesterVersion]" />
    <PackageDownload Include="Microsoft.Extensions.Logging.Abstractions" Version="[8.0.0]" />
  </ItemGroup>
</Project>
"@ | Set-Content $project
        Invoke-Native 'Restore test tools (Pester)' { dotnet restore $project --packages $PackagesDir --nologo -v quiet }
        $target = Join-Path $ToolsDir "Pester/$PesterVersion"
        New-Item -ItemType Directory -Force $target | Out-Null
        Copy-Item (Join-Path $PackagesDir "pester/$PesterVersion/tools/*") $target -Recurse -Force
    }
    $env:PSModulePath = $ToolsDir + [IO.Path]::PathSeparator + $env:PSModulePath
    $env:CKLLM_TEST_PACKAGES = $PackagesDir
    Initialize-TestClients
}

# The real third-party clients (npm 'openai', '@modelcontextprotocol/sdk') the server tests drive, installed exactly as
# locked in tests/clients/package-lock.json; re-installed only when the lockfile changes.
function Initialize-TestClients {
    $source = Join-Path $Root 'tests/clients'
    $target = Join-Path $BuildDir 'clients'
    $lock = Join-Path $source 'package-lock.json'
    $stamp = Join-Path $target '.lock-hash'
    $hash = (Get-FileHash $lock -Algorithm SHA256).Hash
    if (-not (Test-Path $stamp) -or (Get-Content $stamp -Raw).Trim() -ne $hash) {
        Remove-Item $target -Recurse -Force -ErrorAction Ignore
        New-Item -ItemType Directory -Force $target | Out-Null
        Copy-Item (Join-Path $source 'package.json'), $lock $target
        Invoke-Native 'Install test clients (npm ci)' {
            Push-Location $target
            try { npm ci --ignore-scripts --no-audit --no-fund --loglevel=error } finally { Pop-Location }
        }
        Set-Content $stamp $hash
    }
    $env:CKLLM_TEST_CLIENTS = $target
}

. (Join-Path $Root 'tests/TestAccounting.ps1')

function Invoke-EngineTests {
    Write-Host '==> xunit: engine tests' -ForegroundColor Cyan
    Invoke-XunitTests -Project (Join-Path $Root 'tests/CkLlm.Engine.Tests/CkLlm.Engine.Tests.csproj') -Configuration $Configuration `
        -ResultsDirectory (Join-Path $BuildDir 'test-results') -BuildProperties $BuildProperties
}

function Invoke-PesterTests {
    Import-Module Pester -RequiredVersion $PesterVersion
    $env:CKLLM_MODULE = Join-Path $ModuleDir 'CkLlm.psd1'
    $config = New-PesterConfiguration
    $paths = Get-ChildItem (Join-Path $Root 'tests/pester') -Filter '*.Tests.ps1' |
        Where-Object { -not $PesterFilter -or $_.Name -like $PesterFilter } | ForEach-Object FullName
    if (-not $paths) { throw "No Pester file in tests/pester matches '$PesterFilter'." }
    $config.Run.Path = [string[]]$paths
    $config.Run.PassThru = $true
    $config.Output.Verbosity = 'Detailed'
    Write-Host '==> Pester: cmdlet tests' -ForegroundColor Cyan
    Measure-PesterRun (Invoke-Pester -Configuration $config)
}

switch ($Task) {
    'Clean' { Remove-Item $OutDir, $BuildDir -Recurse -Force -ErrorAction Ignore }
    'Build' { Invoke-Build }
    'Test' {
        Invoke-Build
        Initialize-TestTools
        $runs = @()
        if (-not $PesterFilter) { $runs += Invoke-EngineTests }
        $runs += Invoke-PesterTests
        $runs | Format-Table Runner, Passed, Failed, Skipped, Discovered, Executed -AutoSize | Out-String | Write-Host
        foreach ($problem in $runs | ForEach-Object { $runner = $_.Runner; $_.Problems | ForEach-Object { "${runner}: $_" } }) {
            Write-Host "Run problem, counted as failed: $problem" -ForegroundColor Red
        }
        $passed = ($runs | Measure-Object Passed -Sum).Sum
        $failed = ($runs | Measure-Object Failed -Sum).Sum
        $skipped = ($runs | Measure-Object Skipped -Sum).Sum
        # A plain closing line that CI reads; an abnormal run (crashed host, missing results, tests that never ran) or
        # nothing run at all counts as a failure.
        Write-Host "$passed passed, $failed failed, $skipped skipped"
        if ($failed -gt 0 -or $passed -eq 0) { exit 1 }
        exit 0
    }
    'Demo' {
        Invoke-Build
        & (Join-Path $Root 'docs/demo/Demo.ps1') -ModulePath (Join-Path $ModuleDir 'CkLlm.psd1') -Model $Model
    }
    'Bench' {
        Invoke-Build
        $modulePath = Join-Path $ModuleDir 'CkLlm.psd1'
        # Each area in its own pwsh: the benchmarks import the module and load native libraries. Value: whether the
        # script takes the built module's path.
        $benchmarks = [ordered]@{
            Completion = $true; Knowledge = $false; FineTune = $true; Ingestion = $false; Soak = $true
            Server = $true; Chat = $true; Postgres = $true
            Remote = $true
        }
        foreach ($area in $benchmarks.Keys) {
            if ($BenchArea -notin 'All', $area) { continue }
            $benchScript = Join-Path $Root "tests/bench/$area.Bench.ps1"
            $arguments = @(if ($benchmarks[$area]) { '-ModulePath', $modulePath })
            Invoke-Native "Benchmark: $area" { & (Get-PwshCommand) -NoProfile -File $benchScript @arguments }
        }
    }
}
