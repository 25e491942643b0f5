#requires -Version 7.4
<#
.SYNOPSIS
    Fine-tuning benchmark: training tokens/s and peak memory (LoRA and Full) and the training graph's forward pass
    against llama.cpp's prompt processing on the same generated models, in one run. Prints a markdown table.
.EXAMPLE
    dotnet pwsh ./tools/bench/FineTune.Bench.ps1 -ModulePath ./out/CkLlm/CkLlm.psd1 -Presets Tiny, Small
.EXAMPLE
    dotnet pwsh ./tools/bench/FineTune.Bench.ps1 -ModulePath ./out/CkLlm/CkLlm.psd1 -Presets Medium -ContextLength 128 -Epochs 1 -BatchSize 2
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [string[]] $Presets = @('Tiny', 'Small'),
    [int] $ContextLength = 64,
    [int] $Epochs = 2,
    [int] $BatchSize = 4
)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath -Force
. (Join-Path $PSScriptRoot '../../tests/pester/Training.TestHelpers.ps1')
$engine = Get-CkEngineAssembly
$dir = Join-Path ([IO.Path]::GetTempPath()) "ckllm-bench-$([guid]::NewGuid().ToString('N'))"
New-Item -ItemType Directory $dir | Out-Null
$text = ($script:TrainingFacts + "`n") * 2
try {
    $rows = foreach ($presetName in $Presets) {
        $optionsType = $engine.GetType('CkLlm.Engine.Model.Generation.ModelGenerationOptions')
        $options = [Activator]::CreateInstance($optionsType)
        $options.Preset = $engine.GetType('CkLlm.Engine.Model.Generation.ModelPreset')::Get($presetName)
        $options.Corpus = $script:TrainingFacts
        $model = Join-Path $dir "$presetName.gguf"
        $engine.GetType('CkLlm.Engine.Model.Generation.ModelGenerator')::Generate($model, $options)
        $forward = $engine.GetType('CkLlm.Engine.Training.TrainingBenchmark')::MeasureForward($model, $ContextLength, 3, 0)
        foreach ($method in 'Lora', 'Full') {
            $result = Start-CkFineTune -Model $model -Text $text -OutputPath (Join-Path $dir "$presetName-$method.gguf") -Method $method `
                -Epochs $Epochs -ContextLength $ContextLength -BatchSize $BatchSize -SkipPerplexity -Wait
            [pscustomobject]@{
                Preset = $presetName; Parameters = $options.Preset.ParameterCount; Method = $method
                TrainTokensPerSecond = [math]::Round($result.TokensPerSecond)
                PeakMemoryMB = [math]::Round($result.PeakMemory / 1MB)
                GraphForwardTokensPerSecond = [math]::Round($forward.GraphTokensPerSecond)
                LlamaCppPromptTokensPerSecond = [math]::Round($forward.LlamaCppTokensPerSecond)
            }
        }
    }
    $rows | Format-Table -AutoSize | Out-String | Write-Host
    '| Preset | Parameters | Method | Training tok/s | Peak memory (MB) | Graph forward tok/s | llama.cpp prompt tok/s |'
    '|---|---:|---|---:|---:|---:|---:|'
    foreach ($r in $rows) {
        "| $($r.Preset) | $($r.Parameters) | $($r.Method) | $($r.TrainTokensPerSecond) | $($r.PeakMemoryMB) | $($r.GraphForwardTokensPerSecond) | $($r.LlamaCppPromptTokensPerSecond) |"
    }
}
finally {
    Remove-Item $dir -Recurse -Force -ErrorAction Ignore
}
