#requires -Version 7.4
<#
.SYNOPSIS
    Completion benchmark: Invoke-CkCompletion / CkLlm's completion engine against a raw LLamaSharp executor.
.DESCRIPTION
    Generates a Medium (~100M parameter) model, quantizes a Q8_0 copy with llama_model_quantize, and for each file
    measures prompt-processing and generation tokens/s of (1) LLamaSharp's StatelessExecutor and (2) CkLlm's
    completion engine through its model seam (tests/bench/CompletionBench harness, same process, identical outside
    timing), and (3) Invoke-CkCompletion in this pwsh, timed from outside the same way: all three are charged the same
    decodes (one per generated token after the first; LLamaSharp's executor decodes once more after its last token,
    which is not counted). The figures Invoke-CkCompletion reports about itself are listed beside, without a ratio
    (they time other spans). Alternating rounds, same threads everywhere. Writes the Completion section of
    docs/benchmarks.md (between its markers, through BenchDocs.ps1): every number and sentence in it comes from this
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

    # Invoke-CkCompletion timed from outside like the harness: the time to the first token is a call generating one
    # token (prompt and context creation included, plus the cmdlet's own overhead); the generation span is a call
    # generating N tokens minus that, i.e. N-1 sample+decode steps, the harness's first-to-last span.
    function Measure-CmdletCompletion([string] $Prompt, $Model, [int] $PromptTokenCount, [int] $Tokens) {
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $null = Invoke-CkCompletion $Prompt -MaxTokens 1 -Temperature 0 -Model $Model -NoCache
        $toFirst = $clock.Elapsed.TotalSeconds
        $clock.Restart()
        $result = Invoke-CkCompletion $Prompt -MaxTokens $Tokens -Temperature 0 -Model $Model -NoCache
        $toLast = $clock.Elapsed.TotalSeconds
        # An end-of-generation token before -MaxTokens shortens the span; it still holds CompletionTokens-1 decodes.
        if ($result.CompletionTokens -lt 2) { throw "Invoke-CkCompletion generated $($result.CompletionTokens) token(s); the generation span needs two or more." }
        [pscustomobject]@{
            PromptTokensPerSecond     = $PromptTokenCount / $toFirst
            GenerationTokensPerSecond = ($result.CompletionTokens - 1) / ($toLast - $toFirst)
            ReportedPrompt            = $result.PromptTokensPerSecond
            ReportedGeneration        = $result.TokensPerSecond
        }
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
            $null = Invoke-CkCompletion $prompt -MaxTokens $GenerateTokens -Temperature 0 -Model $model -NoCache   # warm-up, like the harness
            $cmdletRuns.Add((Measure-CmdletCompletion $prompt $model $promptTokenCount $GenerateTokens))
            $model | Remove-CkModel
        }
        $raw = @($measurements | Where-Object Implementation -eq 'raw')
        $engine = @($measurements | Where-Object Implementation -eq 'ckllm')
        $rawPrompt = Get-Median $raw.PromptTokensPerSecond
        $rawGeneration = Get-Median $raw.GenerationTokensPerSecond
        $enginePrompt = Get-Median $engine.PromptTokensPerSecond
        $engineGeneration = Get-Median $engine.GenerationTokensPerSecond
        $cmdletPrompt = Get-Median $cmdletRuns.PromptTokensPerSecond
        $cmdletGeneration = Get-Median $cmdletRuns.GenerationTokensPerSecond

        [pscustomobject]@{
            Model              = "$Preset $type"
            PromptTokens       = $promptTokenCount
            RawPrompt          = [Math]::Round($rawPrompt, 1)
            EnginePrompt       = [Math]::Round($enginePrompt, 1)
            PromptRatio        = [Math]::Round($enginePrompt / $rawPrompt, 3)
            RawGeneration      = [Math]::Round($rawGeneration, 2)
            EngineGeneration   = [Math]::Round($engineGeneration, 2)
            GenerationRatio    = [Math]::Round($engineGeneration / $rawGeneration, 3)
            CmdletPrompt       = [Math]::Round($cmdletPrompt, 1)
            CmdletPromptRatio  = [Math]::Round($cmdletPrompt / $rawPrompt, 3)
            CmdletGeneration   = [Math]::Round($cmdletGeneration, 2)
            CmdletGenRatio     = [Math]::Round($cmdletGeneration / $rawGeneration, 3)
            ReportedPrompt     = [Math]::Round((Get-Median $cmdletRuns.ReportedPrompt), 1)
            ReportedGeneration = [Math]::Round((Get-Median $cmdletRuns.ReportedGeneration), 2)
        }
    }
    $rows | Format-Table -AutoSize | Out-Host

    $load = (Get-Content /proc/loadavg -ErrorAction Ignore) -split ' ' | Select-Object -First 3
    $cpu = ((Get-Content /proc/cpuinfo -ErrorAction Ignore) -match '^model name' | Select-Object -First 1) -replace '^model name\s*:\s*', ''
    $slowest = ($rows | Measure-Object GenerationRatio -Minimum).Minimum
    $fastest = ($rows | Measure-Object GenerationRatio -Maximum).Maximum
    $docLines = @(
        '## Completion'
        ''
        "Measured $(Get-Date -Format 'yyyy-MM-dd HH:mm') UTC by ``build.ps1 -Task Bench`` on $cpu, $([Environment]::ProcessorCount) logical CPUs,"
        "$Threads threads for every implementation, generated $Preset model (seed 1; F32 and a Q8_0 copy made with"
        "llama_model_quantize), greedy decoding, $GenerateTokens generated tokens, medians over $Repetitions rounds (each: a harness process that warms up,"
        'then runs raw and CkLlm in both orders; then a warmed-up Invoke-CkCompletion in this pwsh). Load average at the end of the run:'
        "$($load -join ' ') (the machine is shared with other work; a high load average lowers and scatters every figure)."
        ''
        '| Model | Prompt tokens | Raw pp tok/s | CkLlm pp tok/s | pp ratio | Raw gen tok/s | CkLlm gen tok/s | gen ratio |'
        '|---|---:|---:|---:|---:|---:|---:|---:|'
        foreach ($r in $rows) {
            "| $($r.Model) | $($r.PromptTokens) | $($r.RawPrompt) | $($r.EnginePrompt) | **$($r.PromptRatio)** | $($r.RawGeneration) | $($r.EngineGeneration) | **$($r.GenerationRatio)** |"
        }
        ''
        "In this run the CkLlm generation rate was $slowest to $fastest times the raw executor's (the gen ratio column)."
        ''
        '- *Raw*: LLamaSharp 0.30''s `StatelessExecutor`; *CkLlm*: the session''s model seam (`IChatModel.Stream` on the'
        '  llama.cpp `LoadedModel`, what Invoke-CkCompletion runs). Both timed identically from outside in the same process'
        '  (`tests/bench/CompletionBench`): prompt tok/s = prompt tokens / time to the first generated token (context creation included),'
        '  generation tok/s = tokens after the first / time from receiving the first token to receiving the last. Both clocks'
        '  stop at the last token, so both sides are charged one decode per token after the first (the raw executor''s extra'
        '  decode after its last token is not counted against it).'
        ''
        'Invoke-CkCompletion in pwsh, timed from outside the same way (prompt: a call generating one token, cmdlet overhead'
        "included; generation: ($GenerateTokens - 1) tokens / (a call generating $GenerateTokens tokens minus the one-token call), the same decodes"
        'as above; the ratio is against the raw column of the table above, measured in another process of the same round).'
        'Beside it, the rates the cmdlet reports on its result: they time other spans (the prompt decode alone; all generated'
        'tokens over the decode loop), so they are listed, not divided by anything:'
        ''
        '| Model | Invoke-CkCompletion pp tok/s | vs raw | Invoke-CkCompletion gen tok/s | vs raw | reported PromptTokensPerSecond | reported TokensPerSecond |'
        '|---|---:|---:|---:|---:|---:|---:|'
        foreach ($r in $rows) {
            "| $($r.Model) | $($r.CmdletPrompt) | $($r.CmdletPromptRatio) | $($r.CmdletGeneration) | $($r.CmdletGenRatio) | $($r.ReportedPrompt) | $($r.ReportedGeneration) |"
        }
    )
    . (Join-Path $PSScriptRoot 'BenchDocs.ps1')
    Set-BenchmarkSection 'completion' $docLines
}
finally {
    Get-CkModel | Remove-CkModel -Confirm:$false
    Remove-Item $work -Recurse -Force -ErrorAction Ignore
}
