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
param([string] $ModulePath, [string] $ModelFile, [int] $Port, [string] $Key, [string] $KnowledgeBase)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
$null = Import-CkModel $ModelFile -Name chat -ContextSize 4096
Start-CkServer -Port $Port -ApiKey (ConvertTo-SecureString $Key -AsPlainText -Force) -KnowledgeBase $KnowledgeBase -Wait
'@
    # The served knowledge base gives /v1/embeddings its MiniLM embedder (model id all-MiniLM-L6-v2 or rag/kb).
    function script:Start-E2EServer {
        $port = Get-CkFreePort
        $started = [pscustomobject]@{
            Process  = Start-CkChildPwsh $serverScript @('-ModulePath', $env:CKLLM_MODULE, '-ModelFile', $fx.Model, '-Port', $port, '-Key', $key,
                '-KnowledgeBase', $fx.KnowledgeBase)
            Endpoint = "http://127.0.0.1:$port"
        }
        Wait-CkHttp "$($started.Endpoint)/v1/models" -Process $started.Process -TimeoutSec 180
        $started
    }
    $script:server = Start-E2EServer

    # Runs $Stream (a streamed cmdlet with -ErrorVariable failed) in a thread job and kills $Server's process as soon as
    # the first piece has arrived; returns the cmdlet's error, when it ended, when the server was killed, and the text streamed.
    function script:Invoke-KilledMidStream($Server, [scriptblock] $Stream) {
        $job = Start-ThreadJob -ArgumentList $env:CKLLM_MODULE, $Stream.ToString() -ScriptBlock {
            param($ModulePath, $Stream)
            Import-Module $ModulePath
            . ([scriptblock]::Create($Stream))
            [pscustomobject]@{ Error = $failed[0]; Ended = [DateTime]::UtcNow }
        }
        $deadline = [DateTime]::UtcNow.AddSeconds(120)
        while ($job.Information.Count -eq 0 -and $job.State -notin 'Completed', 'Failed', 'Stopped' -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 10 }
        $running = "$($job.State)"
        $Server.Process.Kill()
        $killed = [DateTime]::UtcNow
        $null = $job | Wait-Job -Timeout 150
        # Read before Receive-Job, which takes the records out of the job.
        $streamed = @($job.Information | ForEach-Object { "$($_.MessageData)" }) -join ''
        $outcome = @($job | Receive-Job 6>$null) | Where-Object { $_.PSObject.Properties['Ended'] }
        $job | Remove-Job -Force
        [pscustomobject]@{ StateAtKill = $running; Error = $outcome.Error; Ended = $outcome.Ended; Killed = $killed; Streamed = $streamed }
    }

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

    It 'builds a knowledge base through the server''s /v1/embeddings that finds what the local MiniLM one finds' {
        $script:remoteKb = Join-Path $fx.Root 'remote-kb'
        $added = Get-ChildItem -LiteralPath $fx.Docs -File |
            Add-CkKnowledge -KnowledgeBase $remoteKb -EmbeddingEndpoint $server.Endpoint -EmbeddingModel all-MiniLM-L6-v2 -EmbeddingApiKey $secureKey
        @($added | Where-Object Status -EQ 'Added').Count | Should -Be 4
        (Get-CkKnowledge -KnowledgeBase $remoteKb -Statistics).Embedder | Should -Be "remote:$($server.Endpoint)/v1?model=all-MiniLM-L6-v2&dimensions=384"
        # A short document is one chunk either way: the same text through the same model gives the same vector.
        $question = 'Which volcano erupted from 1983 to 2018?'
        $local = Search-CkKnowledge $question -KnowledgeBase $fx.KnowledgeBase -Mode Vector -Top 1
        $remote = Search-CkKnowledge $question -KnowledgeBase $remoteKb -Mode Vector -Top 1
        $remote.Source | Should -Be $local.Source
        (Split-Path $remote.Source -Leaf) | Should -Be 'volcano.md'
        [math]::Abs($remote.Score - $local.Score) | Should -BeLessThan 1e-4
        @(Get-ChildItem $remoteKb -Recurse -File | Select-String -SimpleMatch $key -List) | Should -BeNullOrEmpty
    }

    It 'searches and answers in a new process with the recorded endpoint and the key from CKLLM_EMBEDDING_API_KEY' {
        $probe = Join-Path $fx.Root 'search-remote-kb.ps1'
        Set-Content -LiteralPath $probe -Value @'
param([string] $ModulePath, [string] $KnowledgeBase, [string] $ModelFile, [string] $Key)
Import-Module $ModulePath
$question = 'Which volcano erupted from 1983 to 2018?'
Search-CkKnowledge $question -KnowledgeBase $KnowledgeBase -Top 1 -ErrorAction SilentlyContinue -ErrorVariable noKey | Out-Null
$env:CKLLM_EMBEDDING_API_KEY = $Key
$hit = Search-CkKnowledge $question -KnowledgeBase $KnowledgeBase -Mode Vector -Top 1
$null = Import-CkModel $ModelFile -Name local -ContextSize 4096
$answer = Invoke-CkRag $question -KnowledgeBase $KnowledgeBase -Mode Vector -Top 1 -MaxTokens 4 -Temperature 0
[pscustomobject]@{ NoKey = "$($noKey[0].FullyQualifiedErrorId)"; Hit = Split-Path $hit.Source -Leaf; Cited = @($answer.Citations.Source | Split-Path -Leaf) -join ',' } | ConvertTo-Json -Compress
'@
        $exe = [Environment]::ProcessPath
        $pre = @(if ((Split-Path $exe -Leaf) -like 'dotnet*') { Join-Path $PSHOME 'pwsh.dll' })
        $json = & $exe @pre -NoProfile -NonInteractive -File $probe -ModulePath $env:CKLLM_MODULE -KnowledgeBase $remoteKb -ModelFile $fx.Model -Key $key
        $outcome = ($json | Select-Object -Last 1) | ConvertFrom-Json
        $outcome.NoKey | Should -BeLike 'RemoteAuthenticationFailed,*'
        $outcome.Hit | Should -Be 'volcano.md'
        $outcome.Cited | Should -Be 'volcano.md'
    }

    It 'refuses another embedder on a remotely embedded knowledge base, and a remote one on a local knowledge base' {
        # A knowledge base that cannot be opened ends the command: terminating errors.
        $otherModel = try { Add-CkKnowledge -Text 'More about lava.' -KnowledgeBase $remoteKb -EmbeddingEndpoint $server.Endpoint -EmbeddingModel rag/kb } catch { $_ }
        $localEmbedder = try { Add-CkKnowledge -Text 'More about lava.' -KnowledgeBase $remoteKb -Embedder MiniLM } catch { $_ }
        $onLocal = try { Add-CkKnowledge -Text 'More about lava.' -KnowledgeBase $fx.KnowledgeBase -EmbeddingEndpoint $server.Endpoint -EmbeddingModel all-MiniLM-L6-v2 } catch { $_ }
        foreach ($refusal in $otherModel, $localEmbedder, $onLocal) { $refusal.FullyQualifiedErrorId | Should -BeLike 'EmbedderMismatch,*' }
        $otherModel.Exception.Message | Should -Match ([regex]::Escape('model=all-MiniLM-L6-v2&dimensions=384'))
        $onLocal.Exception.Message | Should -Match ([regex]::Escape('model=all-MiniLM-L6-v2&dimensions=384'))
        @(Search-CkKnowledge 'lava' -KnowledgeBase $remoteKb -Mode Keyword -Top 10 | Where-Object Text -Match 'More about lava') | Should -BeNullOrEmpty
    }

    It 'reports a wrong embedding key as AuthenticationError without the key' {
        $wrong = ConvertTo-SecureString 'sk-not-the-embedding-key' -AsPlainText -Force
        $refused = try {
            Add-CkKnowledge -Text 'x' -KnowledgeBase (Join-Path $fx.Root 'wrong-key-kb') -EmbeddingEndpoint $server.Endpoint -EmbeddingModel all-MiniLM-L6-v2 -EmbeddingApiKey $wrong
        }
        catch { $_ }
        $refused.FullyQualifiedErrorId | Should -BeLike 'RemoteAuthenticationFailed,*'
        $refused.CategoryInfo.Category | Should -Be 'AuthenticationError'
        $refused.Exception.Message | Should -Not -Match 'sk-not-the-embedding-key'
    }

    It 'reports a server killed mid-stream at once, with the streamed <Cmdlet> text kept on the error, and the shell goes on' -TestCases @(
        @{ Cmdlet = 'Invoke-CkCompletion'; Stream = { Invoke-CkCompletion 'Once upon a time' -Model remote -MaxTokens 3000 -Temperature 0 -Stream -ErrorAction SilentlyContinue -ErrorVariable failed } }
        @{ Cmdlet = 'Invoke-CkRag'; Stream = { Invoke-CkRag 'Tell me everything about glaciers.' -Model remote -Top 1 -MaxTokens 2000 -Temperature 0 -Stream -ErrorAction SilentlyContinue -ErrorVariable failed } }
    ) {
        param($Cmdlet, $Stream)
        if ($server.Process.HasExited) {
            # The first case killed the shared server: a fresh one, and the remote model pointed at it.
            $script:server = Start-E2EServer
            $null = Import-CkModel -Endpoint $server.Endpoint -RemoteModel chat -ApiKey $secureKey -Name remote -ContextSize 4096
        }
        $null = Get-CkKnowledge -KnowledgeBase $fx.KnowledgeBase -Statistics # makes it the session's current knowledge base for the job
        $cut = Invoke-KilledMidStream $server $Stream
        $cut.StateAtKill | Should -Be 'Running' # still streaming when the server is killed
        $cut.Error.FullyQualifiedErrorId | Should -BeLike 'RemoteStreamInterrupted,*'
        $cut.Error.CategoryInfo.Category | Should -Be 'ConnectionError'
        # Reported when the connection broke, not after the 100 s read timeout.
        ($cut.Ended - $cut.Killed).TotalSeconds | Should -BeLessThan 30
        $cut.Error.Exception.PartialText | Should -Not -BeNullOrEmpty
        $cut.Error.Exception.PartialText | Should -Be $cut.Streamed
    }

    It 'reports the stopped server as ConnectionError, and the shell goes on' {
        Stop-CkServerProcess $server
        Invoke-CkCompletion 'again' -Model remote -ErrorAction SilentlyContinue -ErrorVariable stopped | Should -BeNullOrEmpty
        $stopped[0].FullyQualifiedErrorId | Should -BeLike 'RemoteConnectionFailed,*'
        $stopped[0].CategoryInfo.Category | Should -Be 'ConnectionError'
        (Invoke-CkCompletion 'still here' -Model local -MaxTokens 2 -Temperature 0).CompletionTokens | Should -BeGreaterThan 0
    }
}
