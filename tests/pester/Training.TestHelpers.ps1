# Shared by the fine-tuning Pester tests and the fine-tuning bench: a generated Tiny model and a ~2 KB text of invented facts.

# The invented document (tests/data/invented-facts.json, also read by the xunit fixture and the fine-tuning bench):
# the training text is its sentences joined by spaces; each sentence carries the key fact recall is checked on.
$script:InventedFacts = Get-Content -Raw (Join-Path $PSScriptRoot '../data/invented-facts.json') | ConvertFrom-Json
$script:TrainingFacts = $script:InventedFacts.sentences.text -join ' '

function Get-CkEngineAssembly {
    Get-CkSession | Out-Null # loads the engine into its private context
    [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'CkLlm.Engine' } | Select-Object -First 1
}

# Writes a generated Tiny llama model (F32, vocabulary learned from the facts) to $Path.
function New-TrainingTestModel([string] $Path, [int] $Seed = 1) {
    $engine = Get-CkEngineAssembly
    $optionsType = $engine.GetType('CkLlm.Engine.Model.Generation.ModelGenerationOptions')
    $options = [Activator]::CreateInstance($optionsType)
    $options.Preset = $engine.GetType('CkLlm.Engine.Model.Generation.ModelPreset')::Tiny
    $options.Seed = $Seed
    $options.Corpus = $script:TrainingFacts
    $engine.GetType('CkLlm.Engine.Model.Generation.ModelGenerator')::Generate($Path, $options)
    $Path
}
