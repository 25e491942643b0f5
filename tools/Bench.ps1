#requires -Version 7.4
<#
.SYNOPSIS
    Completion benchmark: Invoke-CkCompletion / CkLlm's completion engine against a raw LLamaSharp executor.
.DESCRIPTION
    Generates a Medium (~100M parameter) model, quantizes a Q8_0 copy with llama_model_quantize, and for each file
    measures prompt-processing and generation tokens/s of (1) LLamaSharp's StatelessExecutor and (2) CkLlm's
    CompletionEngine (tools/bench harness, same process, interleaved, identical outside timing), then (3)
    Invoke-CkCompletion's own figures in this pwsh. Same threads everywhere. Prints the ratios and writes the table
    into docs/benchmarks.md (section "Completion"). Everything else goes to a temporary folder that is deleted.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [string] $Configuration = 'Release',
    [int] $Threads = [Environment]::ProcessorCount,
    [int] $PromptTokens = 128,
    [int] $GenerateTokens = 48,
    [int] $Repetitions = 3,
    [string] $Preset = 'Medium'
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$root = Split-Path $PSScriptRoot -Parent
$harnessProject = Join-Path $PSScriptRoot 'bench/CkLlm.Bench.csproj'
$harnessDir = Join-Path $root ".build/bench"

Write-Host '==> Building the benchmark harness' -ForegroundColor Cyan
dotnet build $harnessProject -c $Configuration -o $harnessDir --nologo -v quiet
if ($LASTEXITCODE -ne 0) { throw "Building $harnessProject failed." }
$harness = Join-Path $harnessDir 'CkLlm.Bench'

Import-Module $ModulePath -Force
$work = Join-Path ([IO.Path]::GetTempPath()) "ckllm-bench-$([guid]::NewGuid().ToString('N'))"
New-Item -ItemType Directory -Path $work | Out-Null
try {
    $f32 = Join-Path $work "$($Preset.ToLowerInvariant())-f32.gguf"
    $q8 = Join-Path $work "$($Preset.ToLowerInvariant())-q8_0.gguf"
    Write-Host "==> New-CkModel -Preset $Preset" -ForegroundColor Cyan
    $summary = New-CkModel -Path $f32 -Preset $Preset -Seed 1
    Write-Host ("{0:N0} parameters, {1:N0} MB" -f $summary.ParameterCount, ($summary.FileSize / 1MB))
    Write-Host '==> Quantizing to Q8_0 (llama_model_quantize)' -ForegroundColor Cyan
    & $harness quantize $f32 $q8 $Threads
    if ($LASTEXITCODE -ne 0) { throw 'Quantization failed.' }

    $rows = foreach ($file in $f32, $q8) {
        $type = if ($file -eq $f32) { 'F32' } else { 'Q8_0' }
        Write-Host "==> $type : raw LLamaSharp StatelessExecutor vs CkLlm CompletionEngine ($Repetitions interleaved runs each)" -ForegroundColor Cyan
        $lines = & $harness compare $file $Threads $PromptTokens $GenerateTokens $Repetitions
        if ($LASTEXITCODE -ne 0) { throw "Benchmark of $file failed." }
        $lines | Where-Object { $_ -notlike '*"summary"*' } | ForEach-Object { Write-Verbose $_ }
        $result = $lines | Where-Object { $_ -like '*"summary"*' } | ConvertFrom-Json

        Write-Host "==> $type : Invoke-CkCompletion in this pwsh (self-reported speeds)" -ForegroundColor Cyan
        $prompt = Get-Content -Raw "$file.prompt.txt"
        $model = Import-CkModel $file -ContextSize ($PromptTokens + $GenerateTokens + 64) -Threads $Threads
        $null = Invoke-CkCompletion $prompt -MaxTokens $GenerateTokens -Temperature 0 -Model $model   # warm-up
        $runs = 1..$Repetitions | ForEach-Object { Invoke-CkCompletion $prompt -MaxTokens $GenerateTokens -Temperature 0 -Model $model }
        $model | Remove-CkModel
        $cmdletPrompt = ($runs.PromptTokensPerSecond | Sort-Object)[[int][Math]::Floor($runs.Count / 2)]
        $cmdletGeneration = ($runs.TokensPerSecond | Sort-Object)[[int][Math]::Floor($runs.Count / 2)]

        [pscustomobject]@{
            Model              = "$Preset $type"
            PromptTokens       = $result.promptTokens
            RawPrompt          = [Math]::Round($result.rawPrompt, 1)
            EnginePrompt       = [Math]::Round($result.ckllmPrompt, 1)
            PromptRatio        = [Math]::Round($result.ckllmPrompt / $result.rawPrompt, 3)
            RawGeneration      = [Math]::Round($result.rawGeneration, 2)
            EngineGeneration   = [Math]::Round($result.ckllmGeneration, 2)
            GenerationRatio    = [Math]::Round($result.ckllmGeneration / $result.rawGeneration, 3)
            CmdletPrompt       = [Math]::Round($cmdletPrompt, 1)
            CmdletGeneration   = [Math]::Round($cmdletGeneration, 2)
            CmdletGenRatio     = [Math]::Round($cmdletGeneration / $result.rawGeneration, 3)
        }
    }
    $rows | Format-Table -AutoSize | Out-Host

    $load = (Get-Content /proc/loadavg -ErrorAction Ignore) -split ' ' | Select-Object -First 3
    $cpu = ((Get-Content /proc/cpuinfo -ErrorAction Ignore) -match '^model name' | Select-Object -First 1) -replace '^model name\s*:\s*', ''
    $table = @(
        '| Model | Prompt tokens | Raw pp tok/s | CkLlm pp tok/s | pp ratio | Raw gen tok/s | CkLlm gen tok/s | gen ratio | Invoke-CkCompletion pp tok/s* | Invoke-CkCompletion gen tok/s* | cmdlet gen ratio |'
        '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|'
        foreach ($r in $rows) {
            "| $($r.Model) | $($r.PromptTokens) | $($r.RawPrompt) | $($r.EnginePrompt) | **$($r.PromptRatio)** | $($r.RawGeneration) | $($r.EngineGeneration) | **$($r.GenerationRatio)** | $($r.CmdletPrompt) | $($r.CmdletGeneration) | $($r.CmdletGenRatio) |"
        }
    ) -join "`n"
    $section = @"
## Completion

Measured $(Get-Date -Format 'yyyy-MM-dd HH:mm') UTC by ``build.ps1 -Task Bench`` on $cpu, $([Environment]::ProcessorCount) logical CPUs,
$Threads threads for every implementation, generated $Preset model (seed 1; F32 and a Q8_0 copy made with
llama_model_quantize), greedy decoding, $GenerateTokens generated tokens, median of $Repetitions interleaved runs after one
warm-up each. Load average at the end: $($load -join ' ') (the machine is shared; treat single-digit percent differences as noise).

$table

- *Raw*: LLamaSharp 0.30's ``StatelessExecutor``; *CkLlm*: ``CompletionEngine.Stream`` (what Invoke-CkCompletion runs).
  Both timed identically from outside in the same process (``tools/bench``): prompt tok/s = prompt tokens / time to the
  first generated token (context creation included), generation tok/s = tokens after the first / time from first to last.
- *Invoke-CkCompletion* columns are the cmdlet's own PromptTokensPerSecond/TokensPerSecond in pwsh; its prompt figure
  times the prompt decode only (no context creation), so it is not comparable with the raw prompt column.
"@
    $benchmarks = Join-Path $root 'docs/benchmarks.md'
    $text = Get-Content -Raw $benchmarks
    $pattern = '(?ms)^## Completion\r?\n.*?(?=^## |\z)'
    $text = if ($text -match $pattern) { [regex]::Replace($text, $pattern, $section.TrimEnd() + "`n`n") } else { $text.TrimEnd() + "`n`n" + $section.TrimEnd() + "`n" }
    Set-Content -Path $benchmarks -Value $text.TrimEnd() -NoNewline
    Add-Content -Path $benchmarks -Value ''
    Write-Host "Wrote the Completion section of $benchmarks"
}
finally {
    Get-CkModel | Remove-CkModel -Confirm:$false
    Remove-Item $work -Recurse -Force -ErrorAction Ignore
}
