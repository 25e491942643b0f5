BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Rag.TestHelpers.ps1')
    $script:fx = New-RagTestFixture
    $script:kb = $fx.KnowledgeBase
    $script:csv = Join-Path $fx.Root 'retrieval.csv'
    @(
        [pscustomobject]@{ Question = 'Which volcano on Hawaii erupted from 1983 to 2018?'; ExpectedSource = 'volcano.md' }
        [pscustomobject]@{ Question = 'What starter of wild yeast makes sourdough bread rise?'; ExpectedSource = 'docs/bread.md' }
        [pscustomobject]@{ Question = 'Violin strings tuned in perfect fifths'; ExpectedSource = (Join-Path $fx.Docs 'violin.md') }
    ) | Export-Csv -LiteralPath $csv
}

AfterAll { Remove-RagTestFixture $script:fx }

Describe 'Measure-CkRetrieval' {
    It 'scores every mode on a CSV file where the answers are known' {
        $summaries = Measure-CkRetrieval $csv -KnowledgeBase $kb -Top 3 -Mode Keyword, Hybrid
        $summaries.Count | Should -Be 2
        $summaries.Mode | Should -Be @('Keyword', 'Hybrid')
        foreach ($summary in $summaries) {
            $summary.GetType().FullName | Should -Be 'CkLlm.Engine.Rag.RetrievalSummary'
            $summary.Questions | Should -Be 3
            $summary.K | Should -Be 3
            $summary.HitAt1 | Should -Be 1
            $summary.HitAtK | Should -Be 1
            $summary.MrrAtK | Should -Be 1
            $summary.Ranks.Rank | Should -Be @(1, 1, 1)
        }
    }

    It 'measures all three modes by default' {
        (Measure-CkRetrieval -Path $csv -KnowledgeBase $kb).Mode | Should -Be @('Hybrid', 'Vector', 'Keyword')
    }

    It 'takes objects and hashtables and reports a miss with -Detailed' {
        $pairs = @(
            [pscustomobject]@{ Question = 'Kilauea shield volcano Hawaii'; ExpectedSource = 'volcano.md' }
            @{ Question = 'Kilauea shield volcano Hawaii'; ExpectedSource = 'bread.md' }
        )
        $ranks = $pairs | Measure-CkRetrieval -KnowledgeBase $kb -Mode Keyword -Top 1 -Detailed
        $ranks.Count | Should -Be 2
        $ranks[0].GetType().FullName | Should -Be 'CkLlm.Engine.Rag.RetrievalRank'
        $ranks[0].Rank | Should -Be 1
        $ranks[0].Found | Should -BeTrue
        $ranks[1].Rank | Should -BeNullOrEmpty
        $ranks[1].Found | Should -BeFalse
        Split-Path $ranks[1].TopSource -Leaf | Should -Be 'volcano.md'
        $summary = $pairs | Measure-CkRetrieval -KnowledgeBase $kb -Mode Keyword -Top 1
        $summary.HitAt1 | Should -Be 0.5
        $summary.MrrAtK | Should -Be 0.5
    }

    It 'skips an item without ExpectedSource with an InvalidData error and measures the rest' {
        $pairs = @(
            [pscustomobject]@{ Question = 'Kilauea shield volcano Hawaii'; ExpectedSource = 'volcano.md' }
            [pscustomobject]@{ Question = 'orphan question' }
        )
        $summary = $pairs | Measure-CkRetrieval -KnowledgeBase $kb -Mode Keyword -ErrorAction SilentlyContinue -ErrorVariable problems
        $summary.Questions | Should -Be 1
        $problems[0].FullyQualifiedErrorId | Should -BeLike 'MissingQuestionOrExpectedSource*'
        $problems[0].CategoryInfo.Category | Should -Be 'InvalidData'
    }

    It 'reports a missing CSV file as ObjectNotFound' {
        { Measure-CkRetrieval -Path (Join-Path $fx.Root 'nope.csv') -KnowledgeBase $kb -ErrorAction Stop } |
            Should -Throw -ErrorId 'CsvNotFound,CkLlm.Commands.MeasureCkRetrievalCommand'
    }
}
