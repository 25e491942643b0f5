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
