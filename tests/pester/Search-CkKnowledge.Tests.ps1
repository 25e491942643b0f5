BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Knowledge.TestHelpers.ps1')
    $root = New-KbTestDirectory
    $kb = Join-Path $root 'kb'
    $md = Join-Path $root 'guide.md'
    Set-Content -LiteralPath $md -Value "# Garden`n`nIntro to the garden.`n`n## Tomatoes`n`nTomatoes need full sun and deep watering twice a week.`n`n## Bees`n`nBees pollinate flowers; lavender attracts them."
    Add-CkKnowledge -LiteralPath $md -KnowledgeBase $kb | Out-Null
    Add-CkKnowledge -Text 'Violins have four strings tuned in fifths.' -Source music -Metadata @{ kind = 'instrument' } -KnowledgeBase $kb | Out-Null
}
AfterAll { Remove-KbTestDirectory $root }

Describe 'Search-CkKnowledge' {
    It 'returns CkKnowledgeHit objects with source, heading and line range (hybrid by default)' {
        $hits = Search-CkKnowledge 'how often to water tomato plants' -KnowledgeBase $kb
        $hits[0].PSObject.TypeNames[0] | Should -Be 'CkKnowledgeHit'
        $hits[0].Rank | Should -Be 1
        $hits[0].Source | Should -Be $md
        $hits[0].Heading | Should -Be 'Garden > Tomatoes'
        $hits[0].Lines | Should -Be '5-7'
        $hits[0].Citation | Should -Be "${md}:5-7"
        $hits[0].ChunkId | Should -BeGreaterThan 0
    }

    It 'takes queries from the pipeline and honours -Top' {
        $hits = 'pollinating insects', 'string instruments' | Search-CkKnowledge -KnowledgeBase $kb -Top 1 -MaxPerSource 0
        $hits.Count | Should -Be 2
        $hits[0].Heading | Should -Be 'Garden > Bees'
        $hits[1].Source | Should -Be 'music'
    }

    It 'supports Keyword and Vector modes, -Filter and -MinScore' {
        @(Search-CkKnowledge 'lavender' -Mode Keyword -KnowledgeBase $kb).Count | Should -Be 1
        (Search-CkKnowledge 'zzzqqq' -Mode Keyword -KnowledgeBase $kb) | Should -BeNullOrEmpty
        (Search-CkKnowledge 'fiddle' -Mode Vector -KnowledgeBase $kb -Top 1).Source | Should -Be 'music'
        (Search-CkKnowledge 'garden' -Filter @{ kind = 'instrument' } -KnowledgeBase $kb).Source | Should -Be 'music'
        Search-CkKnowledge 'garden' -MinScore 0.99 -Mode Vector -KnowledgeBase $kb | Should -BeNullOrEmpty
    }

    It 'rejects an unknown mode and a Top of zero' {
        $mode = { Search-CkKnowledge 'x' -Mode Fuzzy -KnowledgeBase $kb } |
            Should -Throw -ErrorId 'ParameterArgumentValidationError,CkLlm.Commands.SearchCkKnowledgeCommand' -PassThru
        $mode.Exception.ParameterName | Should -Be 'Mode'
        $mode.CategoryInfo.Category | Should -Be 'InvalidData'
        $top = { Search-CkKnowledge 'x' -Top 0 -KnowledgeBase $kb } |
            Should -Throw -ErrorId 'ParameterArgumentValidationError,CkLlm.Commands.SearchCkKnowledgeCommand' -PassThru
        $top.Exception.ParameterName | Should -Be 'Top'
        $top.CategoryInfo.Category | Should -Be 'InvalidData'
    }

    It 'uses the current knowledge base when -KnowledgeBase is omitted' {
        (Get-CkSession).CurrentKnowledgeBase | Should -Be $kb
        (Search-CkKnowledge 'lavender' -Top 1).Heading | Should -Be 'Garden > Bees'
    }
}
