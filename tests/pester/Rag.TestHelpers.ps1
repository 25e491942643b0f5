# Shared by the RAG Pester files: fixture documents with known answers, a knowledge base built from them, and a
# generated Tiny chat model, all in one temp folder.

function New-RagTestFixture {
    $root = Join-Path ([IO.Path]::GetTempPath()) "ckllm-rag-tests-$([guid]::NewGuid().ToString('N'))"
    $docs = Join-Path $root 'docs'
    New-Item -ItemType Directory -Path $docs -Force | Out-Null
    Set-Content -LiteralPath (Join-Path $docs 'volcano.md') -Value "# Volcanoes`n`n## Kilauea`n`nKilauea is a shield volcano on the island of Hawaii.`nIt erupted almost continuously from 1983 to 2018."
    Set-Content -LiteralPath (Join-Path $docs 'bread.md') -Value "# Baking`n`n## Sourdough`n`nSourdough bread rises with a starter of wild yeast and lactobacilli.`nFeed the starter with flour and water every day."
    Set-Content -LiteralPath (Join-Path $docs 'violin.md') -Value "# Instruments`n`n## Violin`n`nThe violin has four strings tuned in perfect fifths: G, D, A and E.`nIts bow is strung with horsehair."
    $long = 1..300 | ForEach-Object { "Line $_ explains how glaciers carve valleys and leave moraines of rock behind them, number $_." }
    Set-Content -LiteralPath (Join-Path $docs 'glaciers.md') -Value (@('# Glaciers', '') + $long)
    $kb = Join-Path $root 'kb'
    Get-ChildItem -LiteralPath $docs -File | Add-CkKnowledge -KnowledgeBase $kb | Out-Null
    $model = Join-Path $root 'tiny-chat.gguf'
    $null = New-CkModel -Path $model -Seed 1 -ChatTemplate ChatML
    [pscustomobject]@{ Root = $root; Docs = $docs; KnowledgeBase = $kb; Model = $model }
}

function Remove-RagTestFixture($Fixture) {
    if (-not $Fixture) { return }
    $null = (Get-CkSession).CloseKnowledgeBase($Fixture.KnowledgeBase)
    Get-CkModel | Remove-CkModel -Confirm:$false
    Remove-Item -LiteralPath $Fixture.Root -Recurse -Force -ErrorAction Ignore
}

<#
  Writes a model that answers every prompt with exactly $Answer (greedy decoding), so marker tests are deterministic.
  It is the generated chat model with every transformer block zeroed: the last hidden state is then the current token's
  embedding, and the output matrix is a lookup table. Each character of $Answer (all distinct) gets its own embedding
  axis whose output row points at the next character; every other token points at the first one; the last points at EOS.
#>
function New-FixedAnswerModel([string] $Path, [string] $Answer) {
    if (($Answer.ToCharArray() | Sort-Object -Unique -CaseSensitive).Count -ne $Answer.Length) { throw "The characters of '$Answer' must be distinct." }
    $source = "$Path.source.gguf"
    $null = New-CkModel -Path $source -Seed 1 -ChatTemplate ChatML
    $engine = (Get-CkSession).GetType().Assembly
    $file = $engine.GetType('CkLlm.Engine.Model.Gguf.GgufReader')::Read($source)
    $tokens = [string[]]$file.GetArray('tokenizer.ggml.tokens').Items
    $eos = [int]$file.GetUInt32('tokenizer.ggml.eos_token_id')
    $embedding = $file.FindTensor('token_embd.weight')
    $output = $file.FindTensor('output.weight')
    if (-not $output) { throw 'The generated model has no separate output.weight; the fixed-answer construction needs one.' }
    $dims = [int]$embedding.Shape[0]
    $vocabulary = [int]$embedding.Shape[1]
    if ($Answer.Length + 1 -gt $dims) { throw "'$Answer' is longer than the $dims embedding axes allow." }
    $ids = foreach ($char in $Answer.ToCharArray()) {
        # Byte-fallback tokens decode to exactly one byte; otherwise a token that is the character itself.
        $id = [array]::IndexOf($tokens, ('<0x{0:X2}>' -f [int]$char))
        if ($id -lt 0) { $id = [array]::IndexOf($tokens, [string]$char) }
        if ($id -lt 0) { throw "No token for '$char' in the generated vocabulary." }
        $id
    }
    $start = $Answer.Length # the axis of every token outside the answer
    $table = [float[]]::new($dims * $vocabulary)
    $lookup = [float[]]::new($dims * $vocabulary)
    for ($token = 0; $token -lt $vocabulary; $token++) {
        $axis = [array]::IndexOf([int[]]$ids, $token)
        $table[$token * $dims + ($axis -ge 0 ? $axis : $start)] = 1
    }
    $lookup[$ids[0] * $dims + $start] = 10
    for ($i = 0; $i -lt $ids.Count; $i++) {
        $next = $i + 1 -lt $ids.Count ? $ids[$i + 1] : $eos
        $lookup[$next * $dims + $i] = 10
    }
    $f32 = [Enum]::ToObject($engine.GetType('CkLlm.Engine.Model.Gguf.GgmlType'), 0)
    $bytes = { param([float[]] $values) $b = [byte[]]::new($values.Length * 4); [Buffer]::BlockCopy($values, 0, $b, 0, $b.Length); , $b }
    $writer = [Activator]::CreateInstance($engine.GetType('CkLlm.Engine.Model.Gguf.GgufWriter'))
    foreach ($entry in $file.Metadata) { $null = $writer.Add($entry.Key, $entry.Value) }
    foreach ($tensor in $file.Tensors) {
        $values = switch ($tensor.Name) {
            'token_embd.weight' { $table }
            'output.weight' { $lookup }
            'output_norm.weight' { [float[]]@(1) * $tensor.ElementCount }
            default { [float[]]::new($tensor.ElementCount) } # every block contributes nothing
        }
        $null = $writer.AddTensor($tensor.Name, [long[]]$tensor.Shape, $f32, (& $bytes $values))
    }
    $writer.WriteTo($Path)
    Remove-Item -LiteralPath $source
    $Path
}
