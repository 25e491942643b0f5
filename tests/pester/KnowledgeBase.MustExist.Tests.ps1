# Read cmdlets need an existing knowledge base: a mistyped -KnowledgeBase used to create an empty one silently.
BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Knowledge.TestHelpers.ps1')
    . (Join-Path $PSScriptRoot 'Model.TestHelpers.ps1')
    $script:root = New-KbTestDirectory
    $script:typo = Join-Path $root 'kb-typo'
    $script:models = New-CkTestModelFolder
    $null = Import-CkModel (Join-Path $models 'tiny-chat.gguf') -ContextSize 512
}

AfterAll {
    Clear-CkTestModels
    Remove-KbTestDirectory $script:root
    Remove-Item $script:models -Recurse -Force -ErrorAction Ignore
}

Describe 'Knowledge cmdlets on a path without a knowledge base' {
    It '<Name> is an ObjectNotFound error naming the path and creates nothing' -TestCases @(
        @{ Name = 'Search-CkKnowledge'; Call = { param($kb) Search-CkKnowledge 'x' -KnowledgeBase $kb } }
        @{ Name = 'Get-CkKnowledge'; Call = { param($kb) Get-CkKnowledge -KnowledgeBase $kb } }
        @{ Name = 'Get-CkKnowledge -Statistics'; Call = { param($kb) Get-CkKnowledge -Statistics -KnowledgeBase $kb } }
        @{ Name = 'Invoke-CkRag'; Call = { param($kb) Invoke-CkRag 'What is x?' -KnowledgeBase $kb -MaxTokens 4 } }
        @{ Name = 'Measure-CkRetrieval'; Call = { param($kb) @{ Question = 'q'; ExpectedSource = 'a.md' } | Measure-CkRetrieval -KnowledgeBase $kb } }
        @{ Name = 'Remove-CkKnowledge'; Call = { param($kb) Remove-CkKnowledge 'a.md' -KnowledgeBase $kb -Confirm:$false } }
        @{ Name = 'Sync-CkKnowledge'; Call = { param($kb) Sync-CkKnowledge -KnowledgeBase $kb -Confirm:$false } }
    ) {
        param($Name, $Call)
        $caught = $null
        try { & $Call $script:typo } catch { $caught = $_ }
        $caught | Should -Not -BeNullOrEmpty
        $caught.FullyQualifiedErrorId | Should -BeLike 'KnowledgeBaseNotFound,*'
        $caught.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $caught.TargetObject | Should -Be $script:typo
        $caught.Exception.Message | Should -BeLike "*no knowledge base at '$($script:typo)'*"
        Test-Path -LiteralPath $script:typo | Should -BeFalse
    }

    It 'an existing directory without a knowledge base is refused too, and left as it was' {
        $plain = Join-Path $script:root 'just-a-folder'
        New-Item -ItemType Directory -Path $plain | Out-Null
        { Search-CkKnowledge 'x' -KnowledgeBase $plain } | Should -Throw -ErrorId 'KnowledgeBaseNotFound,CkLlm.Commands.SearchCkKnowledgeCommand'
        @(Get-ChildItem -LiteralPath $plain -Force).Count | Should -Be 0
    }

    It 'Add-CkKnowledge creates it, and the read cmdlets then find it' {
        $kb = Join-Path $script:root 'kb'
        $added = Add-CkKnowledge -Text 'The harbour opens at nine.' -Source 'notes' -KnowledgeBase $kb
        $added.Status | Should -Be 'Added'
        (Get-CkKnowledge -KnowledgeBase $kb).Source | Should -Be 'notes'
        (Search-CkKnowledge 'harbour' -KnowledgeBase $kb -Mode Keyword).Source | Should -Be 'notes'
    }
}
