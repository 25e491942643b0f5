#requires -Version 7.4
<#
.SYNOPSIS
    Fine-tuning benchmark, written into docs/benchmarks.md (between the finetune markers):
    1. Training tokens/s on a generated preset (default Medium, ~112M parameters) for LoRA and Full: graphs reused
       (current path) against graphs rebuilt every step (previous path) in the same process, and the same llama
       configuration trained by PyTorch on the CPU (Debian python3-torch, installed with apt-get when missing) with the
       same threads, sequence length and batch.
    2. From-scratch training (the TinyStories workflow): New-CkModel -Corpus, then Start-CkFineTune -Method Full on a
       corpus on this machine (/usr/share/common-licenses), held-out perplexity. The model is cached in .build/ and is
       the pretrained fixture of step 3.
    3. Defaults that infuse a document: Start-CkFineTune with only -Model, -Path and -OutputPath on the facts text, on a
       generated Small model and on the pretrained fixture: llama.cpp perplexity ratio, greedy recall of each sentence's
       key fact from its first five words, and perplexity on held-out paraphrases (reported, not gated).
.EXAMPLE
    dotnet pwsh ./tests/bench/FineTune.Bench.ps1 -ModulePath ./out/CkLlm/CkLlm.psd1
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [string] $Preset = 'Medium',
    [int] $ContextLength = 128,
    [int] $BatchSize = 2,
    # Optimizer steps per run and path. Tokens/s are taken over the whole run, the trainer's setup and the first step
    # (where the current path builds its graphs, ~2 steps of time on Medium) included, as a user pays them; a default run
    # has hundreds of steps, so 32 still weighs them more than a real run does. Steady state (steps after the first) and
    # the one-time costs are shown apart.
    [int] $Steps = 32,
    # Optimizer steps of the PyTorch peer (about 20x slower per step than CkLlm).
    [int] $PeerSteps = 12,
    [int] $Threads = [Environment]::ProcessorCount,
    [int] $PretrainSteps = 300,
    # Preset of the from-scratch (pretrained fixture) and generated models the defaults are proven on.
    [string] $InfusionPreset = 'Small',
    [switch] $SkipThroughput,
    [switch] $SkipPeer,
    [switch] $SkipInfusion,
    # Refuse to start when the 1-minute load average is above this (0: never refuse): ggml's training threads spin
    # at barriers, so on a busy machine tokens/s measure the other processes, not the trainer.
    [double] $MaxLoad = 4
)
$ErrorActionPreference = 'Stop'
$startLoad = [double]::Parse((Get-Content /proc/loadavg).Split(' ')[0], [cultureinfo]::InvariantCulture)
if ($MaxLoad -gt 0 -and $startLoad -gt $MaxLoad) {
    throw "The 1-minute load average is $startLoad (above -MaxLoad $MaxLoad): the numbers would measure the other processes. Run it on a quieter machine, or pass -MaxLoad 0."
}
$root = Resolve-Path (Join-Path $PSScriptRoot '../..')
Import-Module $ModulePath -Force
. (Join-Path $root 'tests/pester/Training.TestHelpers.ps1')
$engine = Get-CkEngineAssembly
$T = { param($name) $engine.GetType("CkLlm.Engine.$name", $true) }
$dir = Join-Path ([IO.Path]::GetTempPath()) "ckllm-ftbench-$([guid]::NewGuid().ToString('N'))"
$cache = Join-Path $root '.build/finetune-bench'
New-Item -ItemType Directory $dir, $cache -Force | Out-Null
$load = { (Get-Content /proc/loadavg).Split(' ')[0..2] -join ' / ' }

function New-GeneratedModel([string] $Path, [string] $PresetName, [string] $Corpus, [int] $Seed = 1) {
    $options = [Activator]::CreateInstance((& $T 'Model.Generation.ModelGenerationOptions'))
    $options.Preset = (& $T 'Model.Generation.ModelPreset')::Get($PresetName)
    $options.Corpus = $Corpus
    $options.Seed = $Seed
    (& $T 'Model.Generation.ModelGenerator')::Generate($Path, $options)
    $options.Preset
}

# Debian's python3-torch installs for the system interpreter, not for a python3 earlier on PATH (pyenv shims).
$python = if (Test-Path /usr/bin/python3) { '/usr/bin/python3' } else { 'python3' }

function Install-PyTorch {
    & $python -c 'import torch' 2>$null
    if ($LASTEXITCODE -eq 0) { return }
    Write-Host '==> installing python3-torch (Debian) for the PyTorch peer' -ForegroundColor Cyan
    $env:DEBIAN_FRONTEND = 'noninteractive'
    & apt-get install -y --no-install-recommends python3-torch | Out-Null
    if ($LASTEXITCODE) { & apt-get update | Out-Null; & apt-get install -y --no-install-recommends python3-torch | Out-Null }
    if ($LASTEXITCODE) { throw 'apt-get could not install python3-torch' }
}

# Key facts and held-out paraphrases of the facts text (tests/data/invented-facts.json, read by Training.TestHelpers.ps1).
$keyFactType = & $T 'Training.KeyFact'
$keyFactArray = [Array]::CreateInstance($keyFactType, @($script:InventedFacts.sentences).Count)
for ($i = 0; $i -lt $keyFactArray.Length; $i++) {
    $sentence = $script:InventedFacts.sentences[$i]
    $keyFactArray[$i] = [Activator]::CreateInstance($keyFactType, [object[]]@($sentence.text, $sentence.fact))
}
$paraphrases = $script:InventedFacts.paraphrases -join ' '

$results = [ordered]@{ LoadBefore = & $load; Cpu = ((Get-Content /proc/cpuinfo | Select-String '^model name' | Select-Object -First 1).Line -replace '.*:\s*', '') }
try {
    # ---- 1. throughput: reused vs rebuilt graphs, and the PyTorch peer
    if (-not $SkipThroughput) {
        $model = Join-Path $dir "$Preset.gguf"
        $presetInfo = New-GeneratedModel $model $Preset $script:TrainingFacts
        $text = ($script:TrainingFacts + "`n") * [math]::Max(2, [math]::Ceiling($Steps * $BatchSize * $ContextLength / 250.0) + 1)
        $bench = & $T 'Training.TrainingBenchmark'
        $method = & $T 'Training.FineTuneMethod'
        $results.Throughput = foreach ($m in 'Lora', 'Full') {
            Write-Host "==> $Preset $m : previous path (graphs rebuilt every step), then the current one" -ForegroundColor Cyan
            $old = $bench::MeasureTraining($model, $text, [Enum]::Parse($method, $m), $true, $ContextLength, $BatchSize, $Steps, $Threads)
            $new = $bench::MeasureTraining($model, $text, [Enum]::Parse($method, $m), $false, $ContextLength, $BatchSize, $Steps, $Threads)
            # The ceiling: a forward pass over the same batches (an ideal LoRA step costs ~2 of them, Full ~3), and a
            # node-by-node breakdown of a current step.
            $profile = $bench::ProfileSteps($model, $text, [Enum]::Parse($method, $m), $ContextLength, $BatchSize, $Threads, 3)
            $parts = [ordered]@{}
            foreach ($part in $profile.Parts()) { $parts[$part.Item1] = $part.Item2 }
            [pscustomobject]@{
                Method = $m; Rebuilt = $old.TokensPerSecond; Reused = $new.TokensPerSecond; Forward = $profile.ForwardTokensPerSecond
                RebuiltSteady = $old.SteadyTokensPerSecond; ReusedSteady = $new.SteadyTokensPerSecond
                RebuiltOnceMs = 1000 * ($old.SetupSeconds + $old.FirstStepSeconds); ReusedOnceMs = 1000 * ($new.SetupSeconds + $new.FirstStepSeconds)
                ForwardMs = $profile.ForwardMilliseconds; StepMs = $profile.StepMilliseconds; FirstStepMs = $profile.FirstStepMilliseconds
                Parts = $parts
                PeakMB = [math]::Round($new.PeakMemory / 1MB); PyTorch = $null; Torch = $null
            }
        }
        if (-not $SkipPeer) {
            Install-PyTorch
            foreach ($row in $results.Throughput) {
                Write-Host "==> PyTorch peer $($row.Method)" -ForegroundColor Cyan
                $json = & $python (Join-Path $PSScriptRoot 'finetune_peer.py') --width $presetInfo.EmbeddingLength --blocks $presetInfo.BlockCount `
                    --heads $presetInfo.HeadCount --kv-heads $presetInfo.HeadCountKv --feed-forward $presetInfo.FeedForwardLength `
                    --vocabulary $presetInfo.VocabularySize --context $ContextLength --batch $BatchSize --threads $Threads --method $row.Method --steps $PeerSteps
                if ($LASTEXITCODE) { throw "PyTorch peer failed for $($row.Method)" }
                $peer = $json | Select-Object -Last 1 | ConvertFrom-Json
                $row.PyTorch = $peer.tokens_per_second; $row.Torch = $peer.torch
            }
        }
        $results.Preset = $presetInfo
    }

    if (-not $SkipInfusion) {
        # ---- 2. from scratch on a local corpus (cached: the pretrained fixture)
        $pretrained = Join-Path $cache "pretrained-$($InfusionPreset.ToLowerInvariant())-$PretrainSteps.gguf"
        $pretrainInfo = [IO.Path]::ChangeExtension($pretrained, '.json')
        if (-not (Test-Path $pretrained) -or -not (Test-Path $pretrainInfo)) {
            Write-Host '==> from scratch: New-CkModel -Corpus, Start-CkFineTune -Method Full on /usr/share/common-licenses' -ForegroundColor Cyan
            $files = Get-ChildItem /usr/share/common-licenses -File | Where-Object { -not $_.LinkType } | Sort-Object Name
            $paragraphs = $files | ForEach-Object { (Get-Content -Raw $_.FullName) -split "\n\s*\n" } | Where-Object { $_.Trim().Length -gt 40 }
            $train = for ($i = 0; $i -lt $paragraphs.Count; $i++) { if ($i % 10 -ne 9) { $paragraphs[$i] } }
            $held = for ($i = 0; $i -lt $paragraphs.Count; $i++) { if ($i % 10 -eq 9) { $paragraphs[$i] } }
            $trainFile = Join-Path $dir 'corpus-train.txt'; $heldFile = Join-Path $dir 'corpus-heldout.txt'
            Set-Content $trainFile ($train -join "`n`n"); Set-Content $heldFile ($held -join "`n`n")
            $scratch = Join-Path $dir 'scratch.gguf'
            New-CkModel -Path $scratch -Preset $InfusionPreset -Corpus $trainFile | Out-Null
            $before = Measure-CkPerplexity -Model $scratch -Path $heldFile -ContextLength 129
            $run = Start-CkFineTune -Model $scratch -Path $trainFile -OutputPath $pretrained -Method Full -MaxSteps $PretrainSteps -Force -SkipPerplexity -Wait
            $after = Measure-CkPerplexity -Model $pretrained -Path $heldFile -ContextLength 129
            [pscustomobject]@{
                Preset = $InfusionPreset
                Corpus = "/usr/share/common-licenses ($($files.Count) files, $($paragraphs.Count) paragraphs; every 10th held out)"
                TrainTokens = $run.TrainingTokens; Steps = $run.Steps; Epochs = $run.Epochs; TokensPerSecond = $run.TokensPerSecond
                Minutes = $run.Duration.TotalMinutes; HeldOutBefore = $before.Perplexity; HeldOutAfter = $after.Perplexity
                FirstLoss = $run.History[0].Loss; LastLoss = $run.History[-1].Loss
            } | ConvertTo-Json | Set-Content $pretrainInfo
        }
        $results.Scratch = Get-Content -Raw $pretrainInfo | ConvertFrom-Json

        # ---- 3. defaults on a generated Small model and on the pretrained fixture
        $facts = Join-Path $dir 'facts.md'
        Set-Content -LiteralPath $facts -Value $script:TrainingFacts -NoNewline
        $generated = Join-Path $dir 'generated.gguf'
        New-GeneratedModel $generated $InfusionPreset $script:TrainingFacts 5 | Out-Null
        $check = & $T 'Training.InfusionCheck'
        $results.Infusion = foreach ($case in @(@("generated $InfusionPreset", $generated), @("pretrained $InfusionPreset (from scratch above)", $pretrained))) {
            Write-Host "==> defaults on $($case[0])" -ForegroundColor Cyan
            $out = Join-Path $dir "defaults-$([guid]::NewGuid().ToString('N')).gguf"
            $run = Start-CkFineTune -Model $case[1] -Path $facts -OutputPath $out -Wait
            # [NullString]: PowerShell would pass `$null to a string parameter as ''.
            $report = $check::Measure($case[1], [NullString]::Value, $run.AdapterPath, $script:TrainingFacts, $keyFactArray, $paraphrases, 129)
            [pscustomobject]@{
                Model = $case[0]; Steps = $run.Steps; StoppedEarly = $run.StoppedEarly; Seconds = $run.Duration.TotalSeconds; LearningRate = $run.LearningRate
                Before = $report.PerplexityBefore; After = $report.PerplexityAfter; Ratio = $report.PerplexityRatio; Recall = $report.Recall
                Recalled = @($report.Sentences | Where-Object Recalled).Count; Sentences = $report.Sentences.Count
                HeldBefore = $report.HeldOutPerplexityBefore; HeldAfter = $report.HeldOutPerplexityAfter
            }
        }
    }
    $results.LoadAfter = & $load
}
finally {
    Remove-Item $dir -Recurse -Force -ErrorAction Ignore
}
$results | ConvertTo-Json -Depth 5 | Write-Host

# ---- docs/benchmarks.md: replace the fine-tuning section between markers
$f0 = { param($x) if ($null -eq $x) { 'n/a' } else { '{0:N0}' -f $x } }
$f1 = { param($x) if ($null -eq $x) { 'n/a' } else { '{0:N1}' -f $x } }
$lines = @('## Fine-tuning', '',
    "Measured $(Get-Date -Format 'yyyy-MM-dd HH:mm') UTC by ``tests/bench/FineTune.Bench.ps1`` (``./build.ps1 -Task Bench -BenchArea FineTune``) on $([Environment]::ProcessorCount) cores ($($results.Cpu)); load average $($results.LoadBefore) before, $($results.LoadAfter) after (1 / 5 / 15 min). The machine is shared: absolute numbers move with the load, columns of one row were measured back to back.", '')
if ($results.Throughput) {
    $p = $results.Preset
    $lines += "### Training speed: $($p.Name) preset ($($p.ParameterCount) parameters, vocabulary $($p.VocabularySize))", '',
        "One run of $Steps optimizer steps of $BatchSize x $ContextLength tokens per path and method, $Threads threads, both paths in this one process on the same data. Tokens/s are those of the whole run as a user pays it: the trainer's setup (creating its gradient accumulators and optimizer state; the current path also transposes the weights) and every step, the first one included, where the current path builds and allocates its graphs (*one-time* column: setup plus first step, in ms). *Steady state* is the rate over the steps after the first, which a long run (a default run has hundreds of steps) tends to. *Previous* is the path before graph reuse (graph, backward graph and allocation rebuilt by ggml_opt for every step, ggml's out_prod gradients; still selectable as ``FineTuneOptions.RebuildGraphs``). *Current* builds them once per batch shape and picks each matrix product's kernel (``TrainingProducts``): long products as sgemm mul_mats of transposed operands instead of out_prod's row-wise multiply-adds (the input gradients read a transposed copy of every weight, which costs its memory once more: LoRA's frozen base is transposed once, Full's weights after every optimizer step with a blocked AVX transpose), LoRA's rank-r products as out_prods along the long dimension, LoRA's scale on the rank-r intermediate; its gradients, optimizer state, transposed weights and compute buffer are advised for transparent huge pages, as are the model's weights (both paths). *Forward-only* is the current path's forward pass with the loss over the same batches in the same process: an ideal LoRA step costs about two of them (forward, then the input gradients through every frozen weight), a Full step three (plus the weight gradients), so *step / forward* (steady state) shows how far a step is from that floor: a steady 2x over the previous path needs the current step / forward at half the previous one, which is below the floor when the previous one is under 4 (LoRA) or 6 (Full). PyTorch trains the same llama shapes (random weights, same LoRA rank/alpha/targets, AdamW) on the CPU with the same threads, sequence length and batch.", '',
        '| Method | Previous tok/s | Current tok/s | Current / previous | Steady state: previous tok/s | current tok/s | current / previous | One-time ms: previous | current | Forward-only tok/s | Step / forward: previous | current | Peak memory (MB) | PyTorch tok/s | CkLlm / PyTorch |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|'
    foreach ($r in $results.Throughput) {
        $peerRatio = if ($r.PyTorch) { '{0:N2}' -f ($r.Reused / $r.PyTorch) } else { 'n/a' }
        $lines += "| $($r.Method) | $(& $f1 $r.Rebuilt) | $(& $f1 $r.Reused) | $('{0:N2}' -f ($r.Reused / $r.Rebuilt))x | $(& $f1 $r.RebuiltSteady) | $(& $f1 $r.ReusedSteady) | $('{0:N2}' -f ($r.ReusedSteady / $r.RebuiltSteady))x | $(& $f0 $r.RebuiltOnceMs) | $(& $f0 $r.ReusedOnceMs) | $(& $f1 $r.Forward) | $('{0:N2}' -f ($r.Forward / $r.RebuiltSteady)) | $('{0:N2}' -f ($r.Forward / $r.ReusedSteady)) | $($r.PeakMB) | $(& $f1 $r.PyTorch) | $peerRatio |"
    }
    $lines += '', "Where a current step's time goes, in ms per step of $BatchSize x $ContextLength tokens: every graph node timed on its own (ggml's scheduler callback; the parts sum to a little more than a plain step), the optimizer, the refresh of the transposed weights Full's input gradients read, and input preparation around the graph. Input gradients through the weights are the products a LoRA step cannot skip; LoRA products are the rank-r ones.", '',
        "| Part | $(($results.Throughput | ForEach-Object Method) -join ' | ') |", "|---|$(($results.Throughput | ForEach-Object { '---:' }) -join '|')|"
    foreach ($part in $results.Throughput[0].Parts.Keys) {
        $lines += "| $part | $(($results.Throughput | ForEach-Object { & $f1 $_.Parts[$part] }) -join ' | ') |"
    }
    $lines += "| **sum of the parts** | $(($results.Throughput | ForEach-Object { & $f1 (($_.Parts.Values | Measure-Object -Sum).Sum) }) -join ' | ') |",
        "| step, not instrumented | $(($results.Throughput | ForEach-Object { & $f1 $_.StepMs }) -join ' | ') |",
        "| first step of a run (builds the graphs; once per run and batch shape) | $(($results.Throughput | ForEach-Object { & $f1 $_.FirstStepMs }) -join ' | ') |",
        "| forward-only pass, same batch | $(($results.Throughput | ForEach-Object { & $f1 $_.ForwardMs }) -join ' | ') |"
    if ($results.Throughput[0].Torch) { $lines += '', "PyTorch $($results.Throughput[0].Torch) (Debian python3-torch), $PeerSteps steps." }
    $lines += ''
}
if ($results.Scratch) {
    $s = $results.Scratch
    $lines += '### From scratch on a local corpus (New-CkModel -Corpus, Start-CkFineTune -Method Full)', '',
        "Corpus: $($s.Corpus). A $($s.Preset) model (New-CkModel -Preset $($s.Preset) -Corpus, vocabulary learned from the training split) trained with ``-Method Full -MaxSteps $PretrainSteps`` (defaults otherwise): $($s.Steps) steps, $($s.Epochs) epoch(s) over $(& $f0 $s.TrainTokens) training tokens, $(& $f0 $s.TokensPerSecond) tok/s, $(& $f1 $s.Minutes) min; training loss $(& $f1 $s.FirstLoss) -> $('{0:N2}' -f $s.LastLoss). Held-out perplexity (llama.cpp, context 129): $(& $f1 $s.HeldOutBefore) untrained -> $(& $f1 $s.HeldOutAfter). This model is cached in ``.build/finetune-bench/`` as the pretrained fixture below.", ''
}
if ($results.Infusion) {
    $lines += '### Defaults infuse a document', '',
        '`Start-CkFineTune -Model m.gguf -Path facts.md -OutputPath out.gguf -Wait` with nothing else (LoRA, automatic step budget, sentence-start windows, plateau stopping) on the 18-sentence invented-facts text. Perplexity by llama.cpp on the document; recall = greedy completion (24 tokens) from the first five words of each sentence contains its key fact; held-out = perplexity on paraphrases of the same facts never trained on (reported, not gated).', '',
        '| Base model | Steps | Stopped early | Seconds | Peak LR | Perplexity before | after | ratio | Recall | Held-out paraphrases before | after |', '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|'
    foreach ($r in $results.Infusion) {
        $lines += "| $($r.Model) | $($r.Steps) | $($r.StoppedEarly) | $(& $f0 $r.Seconds) | $($r.LearningRate) | $(& $f1 $r.Before) | $('{0:N2}' -f $r.After) | $(& $f0 $r.Ratio)x | $($r.Recalled)/$($r.Sentences) | $(& $f1 $r.HeldBefore) | $(& $f1 $r.HeldAfter) |"
    }
    $lines += ''
}
. (Join-Path $PSScriptRoot 'BenchDocs.ps1')
Set-BenchmarkSection 'finetune' $lines
