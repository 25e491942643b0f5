BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Model.TestHelpers.ps1')
    . (Join-Path $PSScriptRoot 'Rag.TestHelpers.ps1')
    Clear-CkTestModels
    $script:fx = New-RagTestFixture
    $script:Cues = @{
        Llama3 = '<|start_header_id|>assistant<|end_header_id|>'
        Qwen2  = '<|im_start|>assistant'
        SmolLM = '<|im_start|>assistant'
        Phi3   = '<|assistant|>'
        Gemma2 = '<start_of_turn>model'
    }
}

AfterAll {
    Remove-RagTestFixture $script:fx
}

Describe 'New-CkModel -Architecture' {
    It '<Architecture>: imports, completes, chats with its own template and answers through Invoke-CkRag' -ForEach @(
        @{ Architecture = 'Llama3'; Arch = 'llama' }
        @{ Architecture = 'Qwen2'; Arch = 'qwen2' }
        @{ Architecture = 'SmolLM'; Arch = 'llama' }
        @{ Architecture = 'Phi3'; Arch = 'phi3' }
        @{ Architecture = 'Gemma2'; Arch = 'gemma2' }
    ) {
        $path = Join-Path $fx.Root "$Architecture.gguf"
        $summary = New-CkModel -Path $path -Architecture $Architecture -Seed 3
        $summary.Architecture | Should -Be $Arch
        $summary.HasChatTemplate | Should -BeTrue

        $model = Import-CkModel $path -ContextSize 1024
        $model.Architecture | Should -Be $Arch
        $completion = Invoke-CkCompletion 'The lighthouse keeper' -Model $model.Name -MaxTokens 4 -Temperature 0
        $completion.CompletionTokens | Should -BeGreaterThan 0

        $chat = Invoke-CkCompletion -Model $model.Name -Messages @{ Role = 'user'; Content = 'Hi there' } -MaxTokens 4 -Temperature 0
        $chat.ChatFormat | Should -Be 'template'
        $chat.Prompt | Should -BeLike "*Hi there*$($Cues[$Architecture])*"

        $answer = Invoke-CkRag 'Which volcano on Hawaii erupted from 1983 to 2018?' -Model $model.Name -KnowledgeBase $fx.KnowledgeBase -Mode Keyword -Top 2 -MaxTokens 4 -Temperature 0
        $answer.NoKnowledge | Should -BeFalse
        $answer.ChatFormat | Should -Be 'template'
        $answer.Citations[0].Source | Should -Be (Join-Path $fx.Docs 'volcano.md')
        $answer.CompletionTokens | Should -BeGreaterThan 0
        $model | Remove-CkModel -Confirm:$false
    }

    It 'Llama3 carries a 100k+ byte-level BPE vocabulary and rope frequency factors' {
        $path = Join-Path $fx.Root 'llama3-layout.gguf'
        $summary = New-CkModel -Path $path -Architecture Llama3
        $summary.VocabularySize | Should -BeGreaterThan 100000
        $summary.ChatTemplate | Should -BeLike '*<|start_header_id|>*'
    }
}

Describe 'Start-CkFineTune on an architecture the training graph cannot train' {
    It 'refuses <Architecture> before starting anything, naming the architecture and the reason' -ForEach @(
        @{ Architecture = 'Phi3'; Arch = 'phi3'; Reason = '*fuses q/k/v*' }
        @{ Architecture = 'Gemma2'; Arch = 'gemma2'; Reason = '*softcapping*' }
    ) {
        $path = Join-Path $fx.Root "$Architecture-train.gguf"
        $null = New-CkModel -Path $path -Architecture $Architecture
        $out = Join-Path $fx.Root "$Architecture-out.gguf"
        $jobsBefore = @(Get-Job).Count
        { Start-CkFineTune -Model $path -Text 'Some text to learn.' -OutputPath $out -Wait -ErrorAction Stop } |
            Should -Throw -ErrorId 'CkFineTune.ArchitectureNotTrainable,CkLlm.Commands.StartCkFineTuneCommand'
        try { Start-CkFineTune -Model $path -Text 'Some text to learn.' -OutputPath $out -ErrorAction Stop } catch { $record = $_ }
        $record.CategoryInfo.Category | Should -Be 'InvalidArgument'
        $record.TargetObject | Should -Be $path
        $record.Exception.Architecture | Should -Be $Arch
        $record.Exception.Message | Should -BeLike "*'$Arch'*"
        $record.Exception.Reason | Should -BeLike $Reason
        @(Get-Job).Count | Should -Be $jobsBefore
        Test-Path $out | Should -BeFalse
    }
}
