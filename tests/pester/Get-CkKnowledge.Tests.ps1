BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Knowledge.TestHelpers.ps1')
    $root = New-KbTestDirectory
    $kb = Join-Path $root 'kb'
    Add-CkKnowledge -Text 'Alpha text about owls.' -Source alpha -KnowledgeBase $kb | Out-Null
    Add-CkKnowledge -Text 'Beta text about otters.' -Source beta -KnowledgeBase $kb | Out-Null
}
AfterAll { Remove-KbTestDirectory $root }

Describe 'Get-CkKnowledge' {
    It 'lists sources with id, chunks, hash and kind' {
        $sources = Get-CkKnowledge -KnowledgeBase $kb
        $sources.Source | Should -Be @('alpha', 'beta')
        $sources[0].Chunks | Should -Be 1
        $sources[0].Kind | Should -Be 'Text'
        $sources[0].ContentHash | Should -Match '^[0-9A-F]{64}$'
        $sources[0].Id | Should -BeGreaterThan 0
    }

    It 'filters by wildcard and reports a missing literal name as an error' {
        (Get-CkKnowledge 'b*' -KnowledgeBase $kb).Source | Should -Be 'beta'
        Get-CkKnowledge 'nothing' -KnowledgeBase $kb -ErrorVariable errs -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $errs[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        Get-CkKnowledge 'zz*' -KnowledgeBase $kb -ErrorVariable errs2 | Should -BeNullOrEmpty
        $errs2.Count | Should -Be 0
    }

    It 'reports statistics' {
        $s = Get-CkKnowledge -Statistics -KnowledgeBase $kb
        $s.Sources | Should -Be 2
        $s.Chunks | Should -Be 2
        $s.IndexedVectors | Should -Be 2
        $s.Embedder | Should -Be 'all-MiniLM-L6-v2'
        $s.Dimensions | Should -Be 384
        $s.DatabaseBytes | Should -BeGreaterThan 0
    }

    It 'turns a damaged database into a terminating InvalidData error' {
        $bad = Join-Path $root 'bad'
        New-Item -ItemType Directory $bad | Out-Null
        Set-Content (Join-Path $bad 'knowledge.db') ('x' * 8192)
        $err = { Get-CkKnowledge -KnowledgeBase $bad } | Should -Throw -ErrorId 'KnowledgeBaseCorrupt,CkLlm.Commands.GetCkKnowledgeCommand' -PassThru
        $err.CategoryInfo.Category | Should -Be 'InvalidData'
        $err.Exception.Message | Should -BeLike '*damaged*'
    }
}
