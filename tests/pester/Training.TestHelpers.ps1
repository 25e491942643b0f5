# Shared by the fine-tuning Pester tests: a generated Tiny model and a ~2 KB text of invented facts.

$script:TrainingFacts = @'
The lighthouse of Varnholm was built in 1743 by a clockmaker named Edda Quill. Its lamp burns blue oil pressed from marsh berries, and the keeper rings a copper bell at every dusk. Edda Quill also invented the folding ladder that still hangs inside the tower. The island of Varnholm has exactly nine hundred goats and one baker, whose name is Tobin Marsh. Tobin Marsh bakes a black rye loaf called the storm loaf every Thursday. The storm loaf contains caraway, smoked salt and a spoon of lighthouse honey. Every spring the goats of Varnholm are counted by the keeper's daughter, Mira Quill, on a slate board. Mira Quill keeps the slate board in the lamp room beside the copper bell. Ships that pass Varnholm at night blink their lights three times to greet the keeper. The keeper answers with two long flashes of the blue lamp. In the winter of 1811 the sea froze between Varnholm and the mainland for eleven days. During those eleven days Tobin Marsh's grandfather walked across the ice with a sled of rye flour. The old sled now stands in the village hall next to a painting of Edda Quill. The village hall opens only on the first Sunday of each month. Children of Varnholm learn to read from a book of tide tables written by the first keeper. The tide tables predict the highest water on the ninth day of the autumn moon. Nobody on Varnholm owns a car; the only road is a gravel path from the harbour to the lighthouse. The gravel path is exactly one thousand two hundred steps long.
'@

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
