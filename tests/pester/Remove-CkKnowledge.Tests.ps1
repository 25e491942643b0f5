BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Knowledge.TestHelpers.ps1')
}

Describe 'Remove-CkKnowledge' {
    BeforeEach {
        $root = New-KbTestDirectory
        $kb = Join-Path $root 'kb'
        foreach ($n in 'one', 'two', 'three') { Add-CkKnowledge -Text "Text number $n about rivers." -Source $n -KnowledgeBase $kb | Out-Null }
    }
    AfterEach { Remove-KbTestDirectory $root }

    It 'keeps everything with -WhatIf' {
        Remove-CkKnowledge -Source one -KnowledgeBase $kb -WhatIf
        @(Get-CkKnowledge -KnowledgeBase $kb).Count | Should -Be 3
    }

    It 'removes by source name and returns results with -PassThru' {
        $r = Remove-CkKnowledge -Source one -KnowledgeBase $kb -PassThru -Confirm:$false
        $r.Status | Should -Be 'Removed'
        $r.Source | Should -Be 'one'
        (Get-CkKnowledge -KnowledgeBase $kb).Source | Should -Be @('three', 'two')
        (Get-CkKnowledge -Statistics -KnowledgeBase $kb).IndexedVectors | Should -Be 2
        Search-CkKnowledge 'number one' -Mode Keyword -KnowledgeBase $kb -Top 10 | Where-Object Source -eq 'one' | Should -BeNullOrEmpty
    }

    It 'removes by -Id and from Get-CkKnowledge pipeline output' {
        $two = Get-CkKnowledge two -KnowledgeBase $kb
        Remove-CkKnowledge -Id $two.Id -KnowledgeBase $kb -Confirm:$false
        Get-CkKnowledge 't*' -KnowledgeBase $kb | Remove-CkKnowledge -KnowledgeBase $kb -Confirm:$false
        (Get-CkKnowledge -KnowledgeBase $kb).Source | Should -Be 'one'
    }

    It 'writes ObjectNotFound for an unknown source or id' {
        Remove-CkKnowledge -Source nope -KnowledgeBase $kb -ErrorVariable e1 -ErrorAction SilentlyContinue -Confirm:$false
        Remove-CkKnowledge -Id 999 -KnowledgeBase $kb -ErrorVariable e2 -ErrorAction SilentlyContinue -Confirm:$false
        $e1[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $e2[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        @(Get-CkKnowledge -KnowledgeBase $kb).Count | Should -Be 3
    }
}
