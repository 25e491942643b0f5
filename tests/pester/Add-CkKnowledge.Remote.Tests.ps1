# Add-CkKnowledge -EmbeddingEndpoint: what is refused before anything is created, and failures of the endpoint.
# Remote embeddings that work are tested end to end against Start-CkServer in Remote.EndToEnd.Tests.ps1.
BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Remote.TestHelpers.ps1')
    $script:key = 'sk-embed-pester-93a1f0'
    $script:server = Start-CkFakeOpenAi -ApiKey $key
    $script:work = Join-Path ([IO.Path]::GetTempPath()) "ckllm-remote-kb-tests-$([guid]::NewGuid().ToString('N'))"
    New-Item -ItemType Directory -Path $work | Out-Null
}

AfterAll {
    Stop-CkServerProcess $server
    Remove-Item $work -Recurse -Force -ErrorAction Ignore
}

Describe 'Add-CkKnowledge -EmbeddingEndpoint' {
    It 'refuses <Case> before creating anything' -TestCases @(
        @{ Case = 'a key without an endpoint'; ErrorId = 'EmbeddingApiKeyWithoutEndpoint'; Arguments = @{ EmbeddingApiKey = (ConvertTo-SecureString 'k' -AsPlainText -Force) } }
        @{ Case = 'an endpoint without a model'; ErrorId = 'EmbeddingModelMissing'; Arguments = @{ EmbeddingEndpoint = 'http://127.0.0.1:9' } }
        @{ Case = 'an endpoint and a built-in embedder'; ErrorId = 'EmbedderConflict'; Arguments = @{ EmbeddingEndpoint = 'http://127.0.0.1:9'; Embedder = 'MiniLM' } }
        @{ Case = 'an endpoint that is not http'; ErrorId = 'InvalidEmbeddingEndpoint'; Arguments = @{ EmbeddingEndpoint = 'ftp://127.0.0.1/v1'; EmbeddingModel = 'm' } }
    ) {
        param($Case, $ErrorId, $Arguments)
        $kb = Join-Path $work ([guid]::NewGuid().ToString('N'))
        { Add-CkKnowledge -Text 'x' -KnowledgeBase $kb @Arguments } | Should -Throw -ErrorId "$ErrorId,CkLlm.Commands.AddCkKnowledgeCommand"
        Test-Path $kb | Should -BeFalse
    }

    It 'reports an endpoint that is not running as a terminating ConnectionError' {
        $closed = "http://127.0.0.1:$(Get-CkFreePort)"
        $failure = try { Add-CkKnowledge -Text 'x' -KnowledgeBase (Join-Path $work 'closed') -EmbeddingEndpoint $closed -EmbeddingModel m } catch { $_ }
        $failure.FullyQualifiedErrorId | Should -BeLike 'RemoteConnectionFailed,*'
        $failure.CategoryInfo.Category | Should -Be 'ConnectionError'
    }

    It 'never shows the key a server echoes back, in errors, the Verbose and Debug streams, or files' {
        $wrong = 'sk-wrong-embedding-key-5e7d'
        $everything = & {
            try {
                Add-CkKnowledge -Text 'x' -KnowledgeBase (Join-Path $work 'echo') -EmbeddingEndpoint $server.Endpoint -EmbeddingModel fake-model `
                    -EmbeddingApiKey (ConvertTo-SecureString $wrong -AsPlainText -Force) -Verbose -Debug
            }
            catch { $_ | Format-List * -Force | Out-String; $_.Exception | Format-List * -Force | Out-String }
        } *>&1 | Out-String
        $everything | Should -Match 'RemoteAuthenticationFailed'
        $everything | Should -Match '\*\*\*' # the server's echo, scrubbed
        $everything | Should -Not -Match $wrong
        @(Get-ChildItem $work -Recurse -File | Select-String -SimpleMatch $wrong -List) | Should -BeNullOrEmpty
    }
}
