# New-CkChat, Invoke-CkChat, Get-CkChat, Remove-CkChat, Export-CkChat, Import-CkChat and Enter-CkChat.
BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Model.TestHelpers.ps1')
    . (Join-Path $PSScriptRoot 'Rag.TestHelpers.ps1')
    Clear-CkTestModels
    $script:dir = New-CkTestModelFolder
    $script:chatFile = Join-Path $dir 'tiny-chat.gguf'
    $script:system = 'You are a terse assistant.'

    function Remove-TestChats { Get-CkChat | Remove-CkChat -Confirm:$false }

    # The reply a plain completion gives to the same messages.
    function Get-CompletionReply($Chat, [string] $Message, [int] $MaxTokens) {
        $messages = @($Chat.Messages | ForEach-Object { @{ Role = $_.Role; Content = $_.Content } }) + @(@{ Role = 'user'; Content = $Message })
        (Invoke-CkCompletion -Messages $messages -System $Chat.System -Model $Chat.ModelName -Temperature 0 -MaxTokens $MaxTokens).Text
    }
}

AfterAll {
    Get-CkChat | Remove-CkChat -Confirm:$false
    Clear-CkTestModels
    Remove-Item $script:dir -Recurse -Force -ErrorAction Ignore
}

Describe 'New-CkChat and Get-CkChat' {
    BeforeAll { $null = Import-CkModel $chatFile -ContextSize 1024 }
    AfterEach { Remove-TestChats }

    It 'names chats chat1, chat2, ... and lists them in creation order' {
        $a = New-CkChat
        $b = New-CkChat -System $system
        $a.GetType().FullName | Should -Be 'CkLlm.Engine.Chat.ChatConversation'
        $a.Name | Should -Match '^chat\d+$'
        $b.Name | Should -Not -Be $a.Name
        $b.System | Should -Be $system
        (Get-CkChat).Name | Should -Be @($a.Name, $b.Name)
        (Get-CkChat -Name $b.Name).Name | Should -Be $b.Name
    }

    It 'refuses a name in use (ChatExists) unless -Force' {
        $first = New-CkChat -Name 'same'
        New-CkChat -Name 'same' -ErrorAction SilentlyContinue -ErrorVariable problems | Should -BeNullOrEmpty
        $problems[0].FullyQualifiedErrorId | Should -BeLike 'ChatExists,*'
        $problems[0].CategoryInfo.Category | Should -Be 'ResourceExists'
        $second = New-CkChat -Name 'same' -Force
        $first.IsRemoved | Should -BeTrue
        (Get-CkChat same) | Should -Be $second
    }

    It 'says which chat is missing (ChatNotFound)' {
        Get-CkChat 'no-such-chat' -ErrorAction SilentlyContinue -ErrorVariable problems | Should -BeNullOrEmpty
        $problems[0].FullyQualifiedErrorId | Should -BeLike 'ChatNotFound,*'
        Invoke-CkChat 'no-such-chat' 'hello' -ErrorAction SilentlyContinue -ErrorVariable invokeProblems | Should -BeNullOrEmpty
        $invokeProblems[0].FullyQualifiedErrorId | Should -BeLike 'ChatNotFound,*'
    }

    It 'stops at a knowledge base that does not exist (KnowledgeBaseNotFound) and creates nothing' {
        $missing = Join-Path $dir 'no-kb'
        { New-CkChat -KnowledgeBase $missing } | Should -Throw -ErrorId 'KnowledgeBaseNotFound,CkLlm.Commands.NewCkChatCommand'
        Test-Path $missing | Should -BeFalse
        Get-CkChat | Should -BeNullOrEmpty
    }
}

Describe 'Invoke-CkChat' {
    BeforeAll { $null = Import-CkModel $chatFile -ContextSize 1024 }
    AfterEach { Remove-TestChats }

    It 'answers piped messages turn by turn, reusing the kept state, with the text of a plain completion' {
        $chat = New-CkChat -System $system
        $expected = @()
        $turns = foreach ($message in 'Tell me about the sea.', 'Why is it salty?', 'What lives in it?') {
            $expected += Get-CompletionReply $chat $message 16
            $message | Invoke-CkChat $chat -Temperature 0 -MaxTokens 16
        }
        $turns.Count | Should -Be 3
        $turns[0].GetType().FullName | Should -Be 'CkLlm.Engine.Chat.ChatTurn'
        $turns.Number | Should -Be @(1, 2, 3)
        $turns.Text | Should -Be $expected
        $turns[1].CachedPromptTokens | Should -BeGreaterThan 0
        $turns[2].EvaluatedTokens | Should -BeLessThan $turns[2].PromptTokens
        $turns | ForEach-Object { $_.EvaluatedTokens + $_.CachedPromptTokens | Should -Be $_.PromptTokens }
        $chat.Messages.Count | Should -Be 6
        $chat.Messages[0].Content | Should -Be 'Tell me about the sea.'
    }

    It 'streams the reply to the information stream and still outputs the turn' {
        $chat = New-CkChat
        $output = Invoke-CkChat $chat 'Hello' -Temperature 0 -MaxTokens 8 -Stream 6>&1
        # The engine's types live in its own load context: compare type names, not type literals.
        $turn = @($output | Where-Object { $_.GetType().FullName -eq 'CkLlm.Engine.Chat.ChatTurn' })[0]
        $streamed = -join @($output | Where-Object { $_ -is [System.Management.Automation.InformationRecord] } | ForEach-Object { $_.MessageData.Message })
        $turn.Text | Should -Not -BeNullOrEmpty
        $streamed | Should -Be $turn.Text
    }

    It 'reports an empty message (EmptyMessage) and goes on with the next' {
        $chat = New-CkChat
        $turns = '', 'Hi' | Invoke-CkChat $chat -MaxTokens 2 -ErrorAction SilentlyContinue -ErrorVariable problems
        @($turns).Count | Should -Be 1
        $problems[0].FullyQualifiedErrorId | Should -BeLike 'EmptyMessage,*'
    }

    It 'gives a clear error (ChatModelRemoved) when the chat''s model was removed' {
        $model = Import-CkModel $chatFile -Name 'short-lived' -ContextSize 512
        $chat = New-CkChat -Model $model
        $null = Invoke-CkChat $chat 'Hello' -MaxTokens 2
        $chat.KeptTokens | Should -BeGreaterThan 0
        Remove-CkModel 'short-lived'
        $chat.KeptTokens | Should -Be 0
        Invoke-CkChat $chat 'Still there?' -ErrorAction SilentlyContinue -ErrorVariable problems | Should -BeNullOrEmpty
        $problems[0].FullyQualifiedErrorId | Should -BeLike 'ChatModelRemoved,*'
        $problems[0].CategoryInfo.Category | Should -Be 'ResourceUnavailable'
        $problems[0].Exception.Message | Should -BeLike "*'short-lived'*removed*"
    }

    It 'stops a reply on Ctrl+C (pipeline stop) and keeps the partial reply in the history' {
        $model = Import-CkModel $chatFile -Name 'long-replies' -ContextSize 4096
        $chat = New-CkChat -Model $model -Name 'stoppable'
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript("Import-Module '$env:CKLLM_MODULE'; Invoke-CkChat stoppable 'Count to a million' -MaxTokens 4000 -Temperature 0 -Stream")
            $handle = $ps.BeginInvoke()
            # Event, not a sleep: wait until streamed text has arrived.
            $deadline = [DateTime]::UtcNow.AddMinutes(3)
            while ($ps.Streams.Information.Count -lt 2 -and -not $handle.IsCompleted -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 20 }
            $ps.Streams.Information.Count | Should -BeGreaterOrEqual 2 -Because 'the reply started streaming'
            $ps.Stop()
            $ps.InvocationStateInfo.State | Should -Be 'Stopped'
        }
        finally { $ps.Dispose() }
        $chat.TurnCount | Should -Be 1
        $chat.Turns[0].FinishReason | Should -Be 'Cancelled'
        $chat.Turns[0].CompletionTokens | Should -BeLessThan 4000
        $chat.Messages[1].Content | Should -Be $chat.Turns[0].Text
        Remove-CkModel 'long-replies'
    }

    It 'keeps two chats on one model in two runspaces apart' {
        $first = 'Tell me about the sea.', 'Why is it salty?', 'What lives in it?'
        $second = 'Describe a mountain.', 'How high can it be?', 'Who climbs it?'
        $expected = foreach ($messages in @(, $first) + @(, $second)) {
            $chat = New-CkChat -System $system
            , @($messages | Invoke-CkChat $chat -Temperature 0 -MaxTokens 12 | ForEach-Object Text)
            Remove-CkChat -Chat $chat
        }
        $a = New-CkChat -Name 'parallel-a' -System $system
        $b = New-CkChat -Name 'parallel-b' -System $system
        $module = $env:CKLLM_MODULE
        $results = @(@{ Chat = 'parallel-a'; Messages = $first }, @{ Chat = 'parallel-b'; Messages = $second }) | ForEach-Object -ThrottleLimit 2 -Parallel {
            Import-Module $using:module
            $job = $_
            [pscustomobject]@{ Chat = $job.Chat; Texts = @($job.Messages | Invoke-CkChat $job.Chat -Temperature 0 -MaxTokens 12 | ForEach-Object Text) }
        }
        ($results | Where-Object Chat -EQ 'parallel-a').Texts | Should -Be $expected[0]
        ($results | Where-Object Chat -EQ 'parallel-b').Texts | Should -Be $expected[1]
        $a.TurnCount | Should -Be 3
        $b.TurnCount | Should -Be 3
    }
}

Describe 'Remove-CkChat' {
    BeforeAll { $null = Import-CkModel $chatFile -ContextSize 512 }
    AfterEach { Remove-TestChats }

    It 'keeps the chat with -WhatIf and frees its state when it removes it' {
        $chat = New-CkChat -Name 'to-remove'
        $null = Invoke-CkChat $chat 'Hello' -MaxTokens 2
        Remove-CkChat 'to-remove' -WhatIf
        @(Get-CkChat | ForEach-Object Name) | Should -Contain 'to-remove'
        $chat.KeptTokens | Should -BeGreaterThan 0
        Get-CkChat 'to-remove' | Remove-CkChat
        @(Get-CkChat | ForEach-Object Name) | Should -Not -Contain 'to-remove'
        $chat.IsRemoved | Should -BeTrue
        $chat.KeptTokens | Should -Be 0
        Invoke-CkChat $chat 'again' -ErrorAction SilentlyContinue -ErrorVariable problems | Should -BeNullOrEmpty
        $problems[0].FullyQualifiedErrorId | Should -BeLike 'ChatRemoved,*'
    }
}

Describe 'Export-CkChat and Import-CkChat' {
    BeforeAll { $null = Import-CkModel $chatFile -ContextSize 1024 }
    AfterEach { Remove-TestChats }

    It 'restores a chat that continues identically' {
        $chat = New-CkChat -Name 'saved' -System $system
        $null = 'Tell me about the sea.', 'Why is it salty?' | Invoke-CkChat $chat -Temperature 0 -MaxTokens 12
        $file = Join-Path $dir 'saved.json'
        Export-CkChat $chat $file -Force
        (Get-Content $file -Raw | ConvertFrom-Json).format | Should -Be 'ckllm-chat/1'
        $restored = Import-CkChat $file -Name 'restored'
        $restored.Name | Should -Be 'restored'
        $restored.TurnCount | Should -Be 2
        $restored.System | Should -Be $system
        ($restored.Messages | ForEach-Object Content) | Should -Be ($chat.Messages | ForEach-Object Content)
        $original = Invoke-CkChat $chat 'What lives in it?' -Temperature 0 -MaxTokens 12
        $continued = Invoke-CkChat $restored 'What lives in it?' -Temperature 0 -MaxTokens 12
        $continued.Text | Should -Be $original.Text
        $continued.Number | Should -Be 3
    }

    It 'does not overwrite a file without -Force (ChatFileExists) and honours -WhatIf' {
        $chat = New-CkChat
        $file = Join-Path $dir 'exists.json'
        Set-Content $file 'keep me'
        Export-CkChat $chat $file -ErrorAction SilentlyContinue -ErrorVariable problems
        $problems[0].FullyQualifiedErrorId | Should -BeLike 'ChatFileExists,*'
        Get-Content $file | Should -Be 'keep me'
        $other = Join-Path $dir 'whatif.json'
        Export-CkChat $chat $other -WhatIf
        Test-Path $other | Should -BeFalse
    }

    It 'rejects a file that is not a transcript (InvalidData)' {
        $file = Join-Path $dir 'not-a-chat.json'
        Set-Content $file '{"format":"something-else","name":"x","model":"y"}'
        Import-CkChat $file -ErrorAction SilentlyContinue -ErrorVariable problems | Should -BeNullOrEmpty
        $problems[0].FullyQualifiedErrorId | Should -BeLike 'InvalidData,*'
        Get-CkChat | Should -BeNullOrEmpty
    }
}

Describe 'A chat grounded in a knowledge base' {
    BeforeAll {
        Clear-CkTestModels
        $script:fixture = New-RagTestFixture
        $null = Import-CkModel $fixture.Model -ContextSize 2048
    }
    AfterAll {
        Remove-TestChats
        Remove-RagTestFixture $fixture
    }

    It 'retrieves for a standalone question, cites numbered passages and keeps only questions and answers in the history' {
        $chat = New-CkChat -KnowledgeBase $fixture.KnowledgeBase
        $first = Invoke-CkChat $chat 'Which volcano is on Hawaii?' -Temperature 0 -MaxTokens 8 -Top 2 -Mode Keyword
        $first.StandaloneQuestion | Should -Be 'Which volcano is on Hawaii?'
        $first.Citations.Number | Should -Be @(1..$first.Citations.Count)
        $first.Citations[0].Source | Should -BeLike '*volcano.md'
        $second = Invoke-CkChat $chat 'When did it erupt?' -Temperature 0 -MaxTokens 8 -Top 2
        $second.StandaloneQuestion | Should -Not -BeNullOrEmpty
        $second.Citations.Count | Should -BeGreaterThan 0
        $chat.Messages.Content | Should -Not -Match 'BEGIN PASSAGE'
        $chat.Messages[0].Content | Should -Be 'Which volcano is on Hawaii?'
        $chat.Messages[2].Content | Should -Be 'When did it erupt?'
    }

    Context 'retrieval parameters shared with Invoke-CkRag' {
        BeforeAll {
            # Two teams' notes on one subject: only -Filter can tell them apart.
            $script:teamKb = Join-Path $fixture.Root 'team-kb'
            Add-CkKnowledge -KnowledgeBase $teamKb -Text 'The deploy window opens on Tuesday at noon.' -Source 'ops-notes' -Metadata @{ team = 'ops' } | Out-Null
            Add-CkKnowledge -KnowledgeBase $teamKb -Text 'The deploy window opens on Friday at dawn.' -Source 'dev-notes' -Metadata @{ team = 'dev' } | Out-Null
        }

        It 'applies -Filter to every turn''s retrieval' {
            $chat = New-CkChat -KnowledgeBase $teamKb
            foreach ($team in 'ops', 'dev') {
                $turn = Invoke-CkChat $chat 'When does the deploy window open?' -Filter @{ team = $team } -Temperature 0 -MaxTokens 4
                $turn.Citations.Count | Should -Be 1
                $turn.Citations[0].Source | Should -Be "$team-notes"
            }
        }

        It 'searches -KnowledgeBase instead of the chat''s own for that call, and -Top 1 is not taken for -TopK/-TopP' {
            $chat = New-CkChat -KnowledgeBase $fixture.KnowledgeBase
            $turn = Invoke-CkChat $chat 'When does the deploy window open?' -KnowledgeBase $teamKb -Top 1 -TopK 5 -TopP 0.9 -Temperature 0 -MaxTokens 4
            $turn.Citations.Count | Should -Be 1
            $turn.Citations[0].Source | Should -BeLike '*-notes'
            # The next turn searches the chat's own knowledge base again (the question is rewritten by the random-weight
            # model from the history, so only where the passage comes from is certain).
            $next = Invoke-CkChat $chat 'Which volcano is on Hawaii?' -Top 1 -Temperature 0 -MaxTokens 4
            $next.Citations.Count | Should -Be 1
            $next.Citations[0].Source | Should -BeLike "$($fixture.Docs)*"
        }

        It 'refuses -KnowledgeBase on a chat that is not grounded (ChatNotGrounded) and records no turn' {
            $chat = New-CkChat
            Invoke-CkChat $chat 'Hi' -KnowledgeBase $teamKb -MaxTokens 2 -ErrorVariable failed -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            $failed[0].FullyQualifiedErrorId | Should -Be 'ChatNotGrounded,CkLlm.Commands.InvokeCkChatCommand'
            $failed[0].CategoryInfo.Category | Should -Be 'InvalidOperation'
            $chat.TurnCount | Should -Be 0
        }

        It 'Enter-CkChat -KnowledgeBase starts a chat grounded in it' {
            'When does the deploy window open?' | Enter-CkChat -KnowledgeBase $teamKb -Filter @{ team = 'dev' } -Temperature 0 -MaxTokens 2 6>$null
            $chat = @(Get-CkChat)[-1]
            $chat.KnowledgeBase | Should -Be (Resolve-Path $teamKb).Path
            $chat.Turns[0].Citations.Source | Should -Be @('dev-notes')
        }
    }
}

Describe 'Enter-CkChat' {
    BeforeAll {
        Clear-CkTestModels
        $null = Import-CkModel $chatFile -ContextSize 512
    }
    AfterEach { Remove-TestChats }

    It 'runs a scripted session: messages, /save, /reset, an unknown command, and /exit (later lines are not sent)' {
        $chat = New-CkChat -Name 'interactive'
        $file = Join-Path $dir 'interactive.json'
        $lines = 'Hello', "/save $file", '/reset', '/bogus', 'Again', '/exit', 'never sent'
        $output = $lines | Enter-CkChat $chat -Temperature 0 -MaxTokens 4 6>&1 3>&1
        $chat.TurnCount | Should -Be 2
        $chat.Turns.Message | Should -Be @('Hello', 'Again')
        $chat.Messages.Content | Should -Be @('Again', $chat.Turns[1].Text)
        (Get-Content $file -Raw | ConvertFrom-Json).messages.content | Should -Be @('Hello', $chat.Turns[0].Text)
        @($output | Where-Object { $_ -is [System.Management.Automation.WarningRecord] }).Message | Should -BeLike "*Unknown command '/bogus'*"
    }

    It 'starts a new chat on the current model when none is given' {
        'Hi' | Enter-CkChat -MaxTokens 2 6>$null
        $chats = @(Get-CkChat)
        $chats.Count | Should -Be 1
        $chats[0].TurnCount | Should -Be 1
    }
}
