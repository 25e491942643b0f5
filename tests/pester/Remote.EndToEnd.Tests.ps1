# Remote models end to end: CkLlm's own Start-CkServer in another pwsh process serves the same generated model this
# process loads locally; every cmdlet must give the same text through the server as locally.
BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Rag.TestHelpers.ps1')
    . (Join-Path $PSScriptRoot 'Remote.TestHelpers.ps1')
    Get-CkModel | Remove-CkModel -Confirm:$false
    $script:fx = New-RagTestFixture
    $script:key = 'sk-e2e-2b7f0c55'
    $script:secureKey = ConvertTo-SecureString $key -AsPlainText -Force

    $port = Get-CkFreePort
    $serverScript = Join-Path $fx.Root 'serve.ps1'
    Set-Content -LiteralPath $serverScript -Value @'
param([string] $ModulePath, [string] $ModelFile, [int] $Port, [string] $Key)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
$null = Import-CkModel $ModelFile -Name chat -ContextSize 4096
Start-CkServer -Port $Port -ApiKey (ConvertTo-SecureString $Key -AsPlainText -Force) -Wait
'@
    $script:server = [pscustomobject]@{
        Process  = Start-CkChildPwsh $serverScript @('-ModulePath', $env:CKLLM_MODULE, '-ModelFile', $fx.Model, '-Port', $port, '-Key', $key)
        Endpoint = "http://127.0.0.1:$port"
    }
    Wait-CkHttp "$($server.Endpoint)/v1/models" -Process $server.Process -TimeoutSec 180

    $null = Import-CkModel $fx.Model -Name local -ContextSize 4096
    $null = Import-CkModel -Endpoint $server.Endpoint -RemoteModel chat -ApiKey $secureKey -Name remote -ContextSize 4096
}

AfterAll {
    Stop-CkServerProcess $server
    Remove-RagTestFixture $script:fx
}

Describe 'A remote model served by Start-CkServer' {
    It 'gives the same chat answer as the local model at temperature 0' {
        $messages = @{ Role = 'user'; Content = 'Tell me about volcanoes.' }
        $local = Invoke-CkCompletion -Messages $messages -MaxTokens 24 -Temperature 0 -Model local
        $remote = Invoke-CkCompletion -Messages $messages -MaxTokens 24 -Temperature 0 -Model remote
        $remote.Text | Should -Be $local.Text
        $remote.CompletionTokens | Should -Be $local.CompletionTokens
        $local.Text.Length | Should -BeGreaterThan 0
    }

    It 'gives the same sampled answer as the local model with the same seed' {
        $messages = @{ Role = 'user'; Content = 'Say something.' }
        $local = Invoke-CkCompletion -Messages $messages -MaxTokens 24 -Temperature 0.9 -Seed 7 -Model local
        $remote = Invoke-CkCompletion -Messages $messages -MaxTokens 24 -Temperature 0.9 -Seed 7 -Model remote
        $remote.Text | Should -Be $local.Text
    }

    It 'continues a raw prompt like the local model, streamed' {
        $local = Invoke-CkCompletion 'Once upon a time' -MaxTokens 24 -Temperature 0 -Model local
        $all = Invoke-CkCompletion 'Once upon a time' -MaxTokens 24 -Temperature 0 -Model remote -Stream 6>&1
        $remote = @($all | Where-Object { $_.GetType().FullName -eq 'CkLlm.Engine.Inference.CompletionResult' })[0]
        $streamed = @($all | Where-Object { $_ -is [System.Management.Automation.InformationRecord] } | ForEach-Object { "$($_.MessageData)" }) -join ''
        $remote.Text | Should -Be $local.Text
        $streamed.TrimEnd() | Should -Be $local.Text.TrimEnd()
    }

    It 'answers Invoke-CkRag with the same text and citations as the local model' {
        $question = 'Which volcano erupted from 1983 to 2018?'
        $local = Invoke-CkRag $question -KnowledgeBase $fx.KnowledgeBase -Top 2 -MaxTokens 16 -Temperature 0 -Model local
        $remote = Invoke-CkRag $question -KnowledgeBase $fx.KnowledgeBase -Top 2 -MaxTokens 16 -Temperature 0 -Model remote -Stream 6>$null
        $remote.Answer | Should -Be $local.Answer
        ($remote.Citations.Source -join ',') | Should -Be ($local.Citations.Source -join ',')
    }

    It 'reports a wrong key as AuthenticationError and an unknown model as ObjectNotFound' {
        $wrong = ConvertTo-SecureString 'sk-not-the-key' -AsPlainText -Force
        Import-CkModel -Endpoint $server.Endpoint -RemoteModel chat -ApiKey $wrong -ErrorAction SilentlyContinue -ErrorVariable authErrors | Should -BeNullOrEmpty
        Import-CkModel -Endpoint $server.Endpoint -RemoteModel nope -ApiKey $secureKey -ErrorAction SilentlyContinue -ErrorVariable modelErrors | Should -BeNullOrEmpty
        $authErrors[0].CategoryInfo.Category | Should -Be 'AuthenticationError'
        $modelErrors[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }

    # A server killed mid-answer is tested against the scripted server (Import-CkModel.Remote.Tests.ps1), where the cut
    # is deterministic; here the stopped server.
    It 'reports the stopped server as ConnectionError, and the shell goes on' {
        Stop-CkServerProcess $server
        Invoke-CkCompletion 'again' -Model remote -ErrorAction SilentlyContinue -ErrorVariable stopped | Should -BeNullOrEmpty
        $stopped[0].FullyQualifiedErrorId | Should -BeLike 'RemoteConnectionFailed,*'
        $stopped[0].CategoryInfo.Category | Should -Be 'ConnectionError'
        (Invoke-CkCompletion 'still here' -Model local -MaxTokens 2 -Temperature 0).CompletionTokens | Should -BeGreaterThan 0
    }
}
