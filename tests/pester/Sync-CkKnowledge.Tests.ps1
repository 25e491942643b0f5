BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Knowledge.TestHelpers.ps1')
}

Describe 'Sync-CkKnowledge' {
    BeforeEach {
        $root = New-KbTestDirectory
        $kb = Join-Path $root 'kb'
        $keep = Join-Path $root 'keep.txt'; $change = Join-Path $root 'change.txt'; $gone = Join-Path $root 'gone.txt'
        Set-Content $keep 'Unchanged text about maples.'
        Set-Content $change 'Original text about oaks.'
        Set-Content $gone 'Soon deleted text about birches.'
        Add-CkKnowledge -LiteralPath $keep, $change, $gone -KnowledgeBase $kb | Out-Null
        Add-CkKnowledge -Text 'Free text is never pruned.' -Source note -KnowledgeBase $kb | Out-Null
        Set-Content $change 'Rewritten text about willows.'
        Remove-Item $gone
    }
    AfterEach { Remove-KbTestDirectory $root }

    It 'changes nothing with -WhatIf' {
        Sync-CkKnowledge -KnowledgeBase $kb -WhatIf | Should -BeNullOrEmpty
        @(Get-CkKnowledge -KnowledgeBase $kb).Count | Should -Be 4
    }

    It 'removes missing files, re-reads changed ones and leaves the rest' {
        $r = Sync-CkKnowledge -KnowledgeBase $kb -Confirm:$false
        ($r | Where-Object Status -eq 'Removed').Source | Should -Be $gone
        ($r | Where-Object Status -eq 'Updated').Source | Should -Be $change
        @($r).Count | Should -Be 2
        (Get-CkKnowledge -KnowledgeBase $kb).Source | Sort-Object | Should -Be (@($change, $keep, 'note') | Sort-Object)
        (Search-CkKnowledge 'willows' -Mode Keyword -KnowledgeBase $kb).Source | Should -Be $change
    }

    It 'only prunes with -PruneOnly' {
        $r = Sync-CkKnowledge -KnowledgeBase $kb -PruneOnly -Confirm:$false
        $r.Status | Should -Be 'Removed'
        (Search-CkKnowledge 'oaks' -Mode Keyword -KnowledgeBase $kb).Source | Should -Be $change
    }
}
