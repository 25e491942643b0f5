#requires -Version 7.4
<#
.SYNOPSIS
    Completion benchmark: Invoke-CkCompletion / CkLlm's completion engine against a raw LLamaSharp executor.
.DESCRIPTION
    Generates a Medium (~100M parameter) model, quantizes a Q8_0 copy with llama_model_quantize, and for each file
    measures prompt-processing and generation tokens/s of (1) LLamaSharp's StatelessExecutor and (2) CkLlm's
    completion engine through its model seam (tests/bench/CompletionBench harness, same process, identical outside timing, the same
    number of decodes on both sides), in alternating rounds, and records (3) the figures Invoke-CkCompletion reports
    about itself in this pwsh, in a separate table without a ratio (they are timed differently). Same threads
    everywhere. Writes the Completion section of docs/benchmarks.md: every number and sentence in it comes from this
    script. Everything else goes to a temporary folder that is deleted.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [string] $Configuration = 'Release',
    [int] $Threads = [Environment]::ProcessorCount,
    [int] $PromptTokens = 128,
    [int] $GenerateTokens = 32,
    [int] $Repetitions = 4,
    [string] $Preset = 'Medium'
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$root = Resolve-Path (Join-Path $PSScriptRoot '../..')
$harnessProject = Join-Path $PSScriptRoot 'CompletionBench/CkLlm.Bench.csproj'
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

    function Get-Median([double[]] $Values) {
        $sorted = @($Values | Sort-Object)
        if ($sorted.Count -eq 0) { return 0 }
        if ($sorted.Count % 2) { return $sorted[[int][Math]::Floor($sorted.Count / 2)] }
        ($sorted[$sorted.Count / 2 - 1] + $sorted[$sorted.Count / 2]) / 2
    }

    $rows = foreach ($file in $f32, $q8) {
        $type = if ($file -eq $f32) { 'F32' } else { 'Q8_0' }
        $measurements = [Collections.Generic.List[object]]::new()
        $cmdletRuns = [Collections.Generic.List[object]]::new()
        $promptTokenCount = 0
        # Each round: the harness (warm-up, then raw and engine interleaved) and then the cmdlet, so load swings on
        # this shared machine hit all three alike.
        for ($round = 1; $round -le $Repetitions; $round++) {
            Write-Host "==> $type round $round/$Repetitions : raw StatelessExecutor vs CompletionEngine, then Invoke-CkCompletion" -ForegroundColor Cyan
            $lines = & $harness compare $file $Threads $PromptTokens $GenerateTokens 2   # both orders: raw first, then CkLlm first
            if ($LASTEXITCODE -ne 0) { throw "Benchmark of $file failed." }
            foreach ($line in $lines) {
                $value = $line | ConvertFrom-Json
                if ($value.PSObject.Properties['summary']) { $promptTokenCount = $value.promptTokens } else { $measurements.Add($value); Write-Verbose $line }
            }
            $prompt = Get-Content -Raw "$file.prompt.txt"
            $model = Import-CkModel $file -ContextSize ($PromptTokens + $GenerateTokens + 64) -Threads $Threads
            $null = Invoke-CkCompletion $prompt -MaxTokens $GenerateTokens -Temperature 0 -Model $model   # warm-up, like the harness
            $cmdletRuns.Add((Invoke-CkCompletion $prompt -MaxTokens $GenerateTokens -Temperature 0 -Model $model))
            $model | Remove-CkModel
        }
        $raw = @($measurements | Where-Object Implementation -eq 'raw')
        $engine = @($measurements | Where-Object Implementation -eq 'ckllm')
        $rawPrompt = Get-Median $raw.PromptTokensPerSecond
        $rawGeneration = Get-Median $raw.GenerationTokensPerSecond
        $enginePrompt = Get-Median $engine.PromptTokensPerSecond
        $engineGeneration = Get-Median $engine.GenerationTokensPerSecond
        $cmdletPrompt = Get-Median $cmdletRuns.PromptTokensPerSecond
        $cmdletGeneration = Get-Median $cmdletRuns.TokensPerSecond

        [pscustomobject]@{
            Model            = "$Preset $type"
            PromptTokens     = $promptTokenCount
            RawPrompt        = [Math]::Round($rawPrompt, 1)
            EnginePrompt     = [Math]::Round($enginePrompt, 1)
            PromptRatio      = [Math]::Round($enginePrompt / $rawPrompt, 3)
            RawGeneration    = [Math]::Round($rawGeneration, 2)
            EngineGeneration = [Math]::Round($engineGeneration, 2)
            GenerationRatio  = [Math]::Round($engineGeneration / $rawGeneration, 3)
            CmdletPrompt     = [Math]::Round($cmdletPrompt, 1)
            CmdletGeneration = [Math]::Round($cmdletGeneration, 2)
        }
    }
    $rows | Format-Table -AutoSize | Out-Host

    $load = (Get-Content /proc/loadavg -ErrorAction Ignore) -split ' ' | Select-Object -First 3
    $cpu = ((Get-Content /proc/cpuinfo -ErrorAction Ignore) -match '^model name' | Select-Object -First 1) -replace '^model name\s*:\s*', ''
    $table = @(
        '| Model | Prompt tokens | Raw pp tok/s | CkLlm pp tok/s | pp ratio | Raw gen tok/s | CkLlm gen tok/s | gen ratio |'
        '|---|---:|---:|---:|---:|---:|---:|---:|'
        foreach ($r in $rows) {
            "| $($r.Model) | $($r.PromptTokens) | $($r.RawPrompt) | $($r.EnginePrompt) | **$($r.PromptRatio)** | $($r.RawGeneration) | $($r.EngineGeneration) | **$($r.GenerationRatio)** |"
        }
    ) -join "`n"
    $cmdletTable = @(
        '| Model | Invoke-CkCompletion PromptTokensPerSecond | Invoke-CkCompletion TokensPerSecond |'
        '|---|---:|---:|'
        foreach ($r in $rows) { "| $($r.Model) | $($r.CmdletPrompt) | $($r.CmdletGeneration) |" }
    ) -join "`n"
    $slowest = ($rows | Measure-Object GenerationRatio -Minimum).Minimum
    $fastest = ($rows | Measure-Object GenerationRatio -Maximum).Maximum
    $section = @"
## Completion

Measured $(Get-Date -Format 'yyyy-MM-dd HH:mm') UTC by ``build.ps1 -Task Bench`` on $cpu, $([Environment]::ProcessorCount) logical CPUs,
$Threads threads for every implementation, generated $Preset model (seed 1; F32 and a Q8_0 copy made with
llama_model_quantize), greedy decoding, $GenerateTokens generated tokens, medians over $Repetitions rounds (each: a harness process that warms up,
then runs raw and CkLlm in both orders; then one warmed-up Invoke-CkCompletion). Load average at the end of the run: $($load -join ' ')
(the machine is shared with other work; a high load average lowers and scatters every figure).

$table

In this run the CkLlm generation rate was $slowest to $fastest times the raw executor's (the gen ratio column).

- *Raw*: LLamaSharp 0.30's ``StatelessExecutor``; *CkLlm*: the session's model seam (``IChatModel.Stream`` on the
  llama.cpp ``LoadedModel``, what Invoke-CkCompletion runs). Both timed identically from outside in the same process
  (``tests/bench/CompletionBench``): prompt tok/s = prompt tokens / time to the first generated token (context creation included),
  generation tok/s = tokens after the first / time from receiving the first token to receiving the last. Both clocks
  stop at the last token, so both sides are charged one decode per token after the first (the raw executor's extra
  decode after its last token is not counted against it).

What Invoke-CkCompletion reports about itself in the same rounds (its result's own figures: the prompt rate times the
prompt decode only, the generation rate the decode loop inside the engine). They are timed differently from the
harness, so they are listed, not divided by it:

$cmdletTable
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
