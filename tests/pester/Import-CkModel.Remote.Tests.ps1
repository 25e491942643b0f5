# Remote models through the cmdlets, against a scripted OpenAI-compatible server in another pwsh process.
BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Model.TestHelpers.ps1')
    . (Join-Path $PSScriptRoot 'Remote.TestHelpers.ps1')
    Clear-CkTestModels
    $script:key = 'sk-pester-7d2e91c4-do-not-leak'
    $script:secureKey = ConvertTo-SecureString $key -AsPlainText -Force
    $script:server = Start-CkFakeOpenAi -ApiKey $key
    $script:work = Join-Path ([IO.Path]::GetTempPath()) "ckllm-remote-tests-$([guid]::NewGuid().ToString('N'))"
    New-Item -ItemType Directory -Path $work | Out-Null
}

AfterAll {
    Clear-CkTestModels
    Stop-CkServerProcess $server
    Remove-Item $work -Recurse -Force -ErrorAction Ignore
}

Describe 'Import-CkModel -Endpoint' {
    It 'adds a remote model that Get-CkModel lists as Remote with its endpoint and model id, and Remove-CkModel forgets' {
        $model = Import-CkModel -Endpoint $server.Endpoint -RemoteModel fake-model -ApiKey $secureKey -Name far
        $listed = Get-CkModel far
        "$($listed.Kind) $($listed.RemoteModel) $($listed.Endpoint) $($listed.ContextSize) $($listed.HasApiKey)" |
            Should -Be "Remote fake-model $($server.Endpoint)/v1 4096 True"
        (Get-CkModel -Current).Name | Should -Be 'far'
        Remove-CkModel far
        Get-CkModel far -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $model.IsDisposed | Should -BeTrue
    }

    It 'lists local and remote models alike by Kind' {
        $dir = New-CkTestModelFolder
        try {
            $null = Import-CkModel (Join-Path $dir 'tiny.gguf') -Name near
            $null = Import-CkModel -Endpoint $server.Endpoint -RemoteModel fake-model -ApiKey $secureKey -Name far
            (Get-CkModel | ForEach-Object { "$($_.Name)=$($_.Kind)" }) -join ' ' | Should -Be 'near=Local far=Remote'
        }
        finally { Clear-CkTestModels; Remove-Item $dir -Recurse -Force -ErrorAction Ignore }
    }

    It 'completes a chat and a raw prompt with the same result objects as a local model' {
        $null = Import-CkModel -Endpoint $server.Endpoint -RemoteModel fake-model -ApiKey $secureKey -Name far
        $chat = Invoke-CkCompletion -Messages @{ Role = 'user'; Content = 'Hi' } -Model far -Temperature 0
        $raw = Invoke-CkCompletion 'Once upon a time' -Model far -Temperature 0 -Stream 6>&1
        $chat.GetType().FullName | Should -Be 'CkLlm.Engine.Inference.CompletionResult'
        "$($chat.Text)|$($chat.FinishReason)|$($chat.CompletionTokens)" | Should -Be 'Hello from fake|Stop|3'
        $result = @($raw | Where-Object { $_.GetType().FullName -eq 'CkLlm.Engine.Inference.CompletionResult' })
        $streamed = @($raw | Where-Object { $_ -is [System.Management.Automation.InformationRecord] } | ForEach-Object { "$($_.MessageData)" }) -join ''
        $streamed | Should -Be 'Hello from fake'
        $result[0].ChatFormat | Should -Be 'none'
    }

    It 'refuses -Grammar on a remote model with a clear error instead of ignoring it' {
        $null = Import-CkModel -Endpoint $server.Endpoint -RemoteModel fake-model -ApiKey $secureKey -Name far
        Invoke-CkCompletion 'x' -Model far -Grammar 'root ::= "a"' -ErrorAction SilentlyContinue -ErrorVariable problems | Should -BeNullOrEmpty
        $problems[0].FullyQualifiedErrorId | Should -BeLike 'RemoteParameterNotSupported,*'
        $problems[0].Exception.Message | Should -Match 'Grammar'
    }

    It 'reports a wrong key as AuthenticationError and an unknown model as ObjectNotFound, naming neither key' {
        $wrong = ConvertTo-SecureString 'sk-wrong-key' -AsPlainText -Force
        Import-CkModel -Endpoint $server.Endpoint -RemoteModel fake-model -ApiKey $wrong -ErrorAction SilentlyContinue -ErrorVariable authErrors | Should -BeNullOrEmpty
        Import-CkModel -Endpoint $server.Endpoint -RemoteModel other-model -ApiKey $secureKey -ErrorAction SilentlyContinue -ErrorVariable modelErrors | Should -BeNullOrEmpty
        $authErrors[0].FullyQualifiedErrorId | Should -BeLike 'RemoteAuthenticationFailed,*'
        $authErrors[0].CategoryInfo.Category | Should -Be 'AuthenticationError'
        $authErrors[0].Exception.Message | Should -Not -Match 'sk-wrong-key'
        $modelErrors[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $modelErrors[0].Exception.Message | Should -Match 'fake-model'
    }

    It 'reports a server that is not running as ConnectionError' {
        $closed = "http://127.0.0.1:$(Get-CkFreePort)"
        Import-CkModel -Endpoint $closed -RemoteModel fake-model -ErrorAction SilentlyContinue -ErrorVariable problems | Should -BeNullOrEmpty
        $problems[0].FullyQualifiedErrorId | Should -BeLike 'RemoteConnectionFailed,*'
        $problems[0].CategoryInfo.Category | Should -Be 'ConnectionError'
    }

    It 'keeps the text of an answer cut off by a server that dies mid-stream, and the shell goes on' {
        $dying = Start-CkFakeOpenAi -ApiKey $key
        try {
            $null = Import-CkModel -Endpoint $dying.Endpoint -RemoteModel fake-model -ApiKey $secureKey -Name dying
            Invoke-CkCompletion -Messages @{ Role = 'user'; Content = 'CUT here' } -Model dying -ErrorAction SilentlyContinue -ErrorVariable problems |
                Should -BeNullOrEmpty
            $problems[0].FullyQualifiedErrorId | Should -BeLike 'RemoteStreamInterrupted,*'
            $problems[0].Exception.PartialText | Should -Be 'Partial '
            $dying.Process.WaitForExit(10000) | Should -BeTrue
            Invoke-CkCompletion 'again' -Model dying -ErrorAction SilentlyContinue -ErrorVariable after | Should -BeNullOrEmpty
            $after[0].CategoryInfo.Category | Should -Be 'ConnectionError'
        }
        finally { Stop-CkServerProcess $dying }
    }

    It 'never shows the key in output, the Verbose, Debug and error streams, or files' {
        $everything = & {
            $m = Import-CkModel -Endpoint $server.Endpoint -RemoteModel fake-model -ApiKey $secureKey -Name far -Verbose -Debug
            $m | Format-List * | Out-String
            Get-CkModel far | Format-Table | Out-String
            Get-CkModel far | ConvertTo-Json -Depth 3 -WarningAction SilentlyContinue
            Invoke-CkCompletion 'Hi' -Model far -Verbose -Debug | Format-List * | Out-String
        } *>&1 | Out-String
        $everything | Should -Match 'fake-model'
        $everything | Should -Not -Match ([regex]::Escape($key))
        $files = @(Get-ChildItem $work, (Join-Path $HOME '.ckllm') -Recurse -File -ErrorAction Ignore |
            Where-Object { $_.Length -lt 50MB } | Select-String -SimpleMatch $key -List)
        $files | Should -BeNullOrEmpty
    }
}
