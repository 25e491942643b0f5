# Embedder choice and the optional reranking stage, through the cmdlets.
BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Knowledge.TestHelpers.ps1')
    $root = New-KbTestDirectory
    $kb = Join-Path $root 'kb'
    Add-CkKnowledge -Text 'Kettles boil water for tea.' -Source kettle -KnowledgeBase $kb | Out-Null
    Add-CkKnowledge -Text 'Bicycles have two wheels and pedals.' -Source bicycle -KnowledgeBase $kb | Out-Null
    $chat = Join-Path $root 'judge.gguf'
    $null = New-CkModel -Path $chat -Seed 2
}
AfterAll {
    Get-CkModel | Remove-CkModel -Confirm:$false
    Remove-KbTestDirectory $root
}

Describe 'Add-CkKnowledge -Embedder' {
    It 'refuses an unknown embedder name with UnknownEmbedder and names the known ones' {
        $err = { Add-CkKnowledge -Text 'x' -Embedder NoSuchEmbedder -KnowledgeBase (Join-Path $root 'unknown') -ErrorAction Stop } |
            Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -BeLike 'UnknownEmbedder*'
        $err.Exception.Message | Should -Match 'ArcticXs'
    }

    It 'refuses another embedder for a knowledge base built with MiniLM (EmbedderMismatch)' {
        $err = { Add-CkKnowledge -Text 'x' -Embedder ArcticXs -KnowledgeBase $kb -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -BeLike 'EmbedderMismatch*'
    }

    It 'builds a new knowledge base with ArcticXs and keeps using it when reopened without a name' {
        $arctic = Join-Path $root 'arctic'
        Add-CkKnowledge -Text 'Glaciers carve valleys.' -Source glacier -Embedder ArcticXs -KnowledgeBase $arctic | Out-Null
        (Get-CkKnowledge -KnowledgeBase $arctic -Statistics).Embedder | Should -Be 'snowflake-arctic-embed-xs'
        Add-CkKnowledge -Text 'Volcanoes erupt lava.' -Source volcano -KnowledgeBase $arctic | Select-Object -ExpandProperty Status | Should -Be 'Added'
        (Search-CkKnowledge 'ice shaping the land' -Mode Vector -Top 1 -KnowledgeBase $arctic).Source | Should -Be 'glacier'
    }
}

Describe '-Rerank' {
    It 'refuses a chat model file as a reranker before loading it (NotAReranker)' {
        $err = { Search-CkKnowledge 'tea' -Rerank $chat -KnowledgeBase $kb -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -BeLike 'NotAReranker*'
        $err.CategoryInfo.Category | Should -Be 'InvalidArgument'
    }

    It 'lets a loaded chat model judge the candidates: reranker scores between 0 and 1, -Top kept' {
        Import-CkModel -Path $chat -Name judge | Out-Null
        $hits = Search-CkKnowledge 'what boils water' -Rerank judge -Top 1 -KnowledgeBase $kb
        @($hits).Count | Should -Be 1
        $hits[0].Score | Should -BeGreaterThan 0
        $hits[0].Score | Should -BeLessThan 1
        $hits[0].Source | Should -BeIn @('kettle', 'bicycle')
        $summary = Measure-CkRetrieval -InputObject @{ Question = 'what boils water'; ExpectedSource = 'kettle' } -Mode Vector -Top 2 -Rerank judge -KnowledgeBase $kb
        $summary.Questions | Should -Be 1
        $summary.HitAtK | Should -Be 1
    }
}
