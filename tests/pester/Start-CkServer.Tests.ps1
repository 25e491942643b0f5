BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Rag.TestHelpers.ps1')
    . (Join-Path $PSScriptRoot 'Model.TestHelpers.ps1')
    Get-CkModel | Remove-CkModel -Confirm:$false
    $script:fx = New-RagTestFixture
    $null = Import-CkModel $fx.Model -Name 'chat' -ContextSize 1024
    # rag/ models answer with the session's current model: one that always answers "[1]" makes citations deterministic.
    $null = Import-CkModel (New-FixedAnswerModel (Join-Path $fx.Root 'fixed.gguf') '[1]') -Name 'fixed' -ContextSize 1024
    $script:kbName = Split-Path $fx.KnowledgeBase -Leaf

    # A POST with the raw bytes given; returns status, content type and the parsed body (null when not JSON).
    $script:http = [System.Net.Http.HttpClient]::new()
    function Send-Raw([string] $Url, [byte[]] $Body, [string] $ContentType = 'application/json', [string] $Key) {
        $request = [System.Net.Http.HttpRequestMessage]::new([System.Net.Http.HttpMethod]::Post, $Url)
        $request.Content = [System.Net.Http.ByteArrayContent]::new($Body)
        if ($ContentType) { $request.Content.Headers.ContentType = [System.Net.Http.Headers.MediaTypeHeaderValue]::Parse($ContentType) }
        # The client waits for the server's go-ahead before sending the body, so a refused body is never half-sent.
        $request.Headers.ExpectContinue = $true
        if ($Key) { $request.Headers.Authorization = [System.Net.Http.Headers.AuthenticationHeaderValue]::new('Bearer', $Key) }
        $response = $http.SendAsync($request).GetAwaiter().GetResult()
        $text = $response.Content.ReadAsStringAsync().GetAwaiter().GetResult()
        $json = try { $text | ConvertFrom-Json -Depth 20 } catch { $null }
        [pscustomobject]@{ Status = [int]$response.StatusCode; ContentType = "$($response.Content.Headers.ContentType)"; Json = $json; Text = $text }
    }
    function Send-Json([string] $Url, $Body, [string] $Key) {
        Send-Raw $Url ([Text.Encoding]::UTF8.GetBytes(($Body | ConvertTo-Json -Depth 20 -Compress))) -Key $Key
    }
}

AfterAll {
    Stop-CkServer -ErrorAction SilentlyContinue
    $http.Dispose()
    Remove-RagTestFixture $script:fx
}

Describe 'Start-CkServer' {
    AfterEach { Stop-CkServer }

    It 'serves on the loopback address by default and stops with Stop-CkServer' {
        $server = Start-CkServer -Port 0
        $server.PSObject.TypeNames[0] | Should -Be 'CkServer'
        $server.Url.Host | Should -Be '127.0.0.1'
        $server.Port | Should -BeGreaterThan 0
        $server.Models | Should -Be @('chat', 'fixed')
        (Get-CkServer).Id | Should -Be $server.Id
        $models = Invoke-RestMethod ($server.Url.AbsoluteUri + 'v1/models')
        $models.object | Should -Be 'list'
        $models.data.id | Should -Be @('chat', 'fixed')

        $stopped = Stop-CkServer -Id $server.Id -PassThru
        $stopped.State | Should -Be 'Stopped'
        Get-CkServer | Should -BeNullOrEmpty
        { Invoke-RestMethod ($server.Url.AbsoluteUri + 'v1/models') -TimeoutSec 5 } | Should -Throw -ExceptionType ([System.Net.Http.HttpRequestException])
    }

    It 'refuses a non-loopback address without a key (SecurityError) and serves it with -Force' {
        $problem = try { Start-CkServer -Address 0.0.0.0 -Port 0; $null } catch { $_ }
        $problem.FullyQualifiedErrorId | Should -BeLike 'RemoteWithoutApiKey*'
        $problem.CategoryInfo.Category | Should -Be 'SecurityError'
        Get-CkServer | Should -BeNullOrEmpty

        $server = Start-CkServer -Address 0.0.0.0 -Port 0 -Force
        (Invoke-RestMethod ($server.Url.AbsoluteUri + 'v1/models')).data.id | Should -Contain 'chat'
    }

    It 'reports a port in use as AddressInUse and leaves the first server running' {
        $first = Start-CkServer -Port 0
        $problem = try { Start-CkServer -Port $first.Port; $null } catch { $_ }
        $problem.FullyQualifiedErrorId | Should -BeLike 'AddressInUse*'
        $problem.CategoryInfo.Category | Should -Be 'ResourceUnavailable'
        @(Get-CkServer).Count | Should -Be 1
        (Invoke-RestMethod ($first.Url.AbsoluteUri + 'v1/models')).object | Should -Be 'list'
    }

    It 'reports a folder without a knowledge base as KnowledgeBaseNotFound and starts nothing' {
        $problem = try { Start-CkServer -Port 0 -KnowledgeBase (Join-Path $fx.Root 'no-kb-here'); $null } catch { $_ }
        $problem.FullyQualifiedErrorId | Should -BeLike 'KnowledgeBaseNotFound*'
        $problem.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        Get-CkServer | Should -BeNullOrEmpty
    }

    It 'serves a model imported after the start and answers 404 once it is removed' {
        $server = Start-CkServer -Port 0
        $null = Import-CkModel $fx.Model -Name 'late' -ContextSize 512
        $body = @{ model = 'late'; messages = @(@{ role = 'user'; content = 'hi' }); max_tokens = 2 }
        (Send-Json ($server.Url.AbsoluteUri + 'v1/chat/completions') $body).Status | Should -Be 200
        Remove-CkModel 'late'
        $gone = Send-Json ($server.Url.AbsoluteUri + 'v1/chat/completions') $body
        $gone.Status | Should -Be 404
        $gone.Json.error.code | Should -Be 'model_not_found'
        $body.model = 'chat'
        (Send-Json ($server.Url.AbsoluteUri + 'v1/chat/completions') $body).Status | Should -Be 200 -Because 'the other models are still served'
    }

    It 'stops its servers when the module is removed (in a child pwsh)' {
        $result = Invoke-CkChildPwsh @"
Import-Module '$env:CKLLM_MODULE'
`$null = Import-CkModel '$($fx.Model)' -ContextSize 512
`$server = Start-CkServer -Port 0
`$url = `$server.Url.AbsoluteUri + 'v1/models'
"before:" + (Invoke-RestMethod `$url).data[0].id
Remove-Module CkLlm
try { Invoke-RestMethod `$url -TimeoutSec 10; 'after: still serving' } catch { 'after: ' + `$_.Exception.GetType().Name }
"@
        $result.ExitCode | Should -Be 0 -Because ($result.Output -join "`n")
        $result.Output | Should -Contain 'before:tiny-chat'
        $result.Output | Should -Contain 'after: HttpRequestException'
    }

    It 'stays in the foreground with -Wait and stops the server when the pipeline is stopped (Ctrl+C)' {
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddCommand('Import-Module').AddArgument($env:CKLLM_MODULE).AddStatement().AddCommand('Start-CkServer').AddParameter('Port', 0).AddParameter('Wait')
            $async = $ps.BeginInvoke()
            $deadline = [DateTime]::UtcNow.AddSeconds(60)
            while (-not (Get-CkServer) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 50 }
            $server = Get-CkServer
            $server | Should -Not -BeNullOrEmpty
            $async.IsCompleted | Should -BeFalse -Because '-Wait keeps the command running'
            $ps.Stop()
            $server.Stopped.Wait([TimeSpan]::FromSeconds(30)) | Should -BeTrue
            Get-CkServer | Should -BeNullOrEmpty
        }
        finally { $ps.Dispose() }
    }
}

Describe 'Start-CkServer with real OpenAI clients' {
    BeforeAll {
        $script:key = 'test-key-' + [guid]::NewGuid().ToString('N')
        $script:server = Start-CkServer -Port 0 -ApiKey (ConvertTo-SecureString $key -AsPlainText -Force) -KnowledgeBase $fx.KnowledgeBase
        $script:base = $server.Url.AbsoluteUri + 'v1'
    }
    AfterAll { Stop-CkServer }

    Context 'the Node.js client (npm openai)' {
        BeforeAll {
            if (-not $env:CKLLM_TEST_CLIENTS) { throw 'CKLLM_TEST_CLIENTS is not set: run the tests through build.ps1 -Task Test.' }
            # ESM resolves packages from the script's own folder: run a copy inside the installed clients.
            $script_ = Join-Path $env:CKLLM_TEST_CLIENTS 'openai-server.mjs'
            Copy-Item (Join-Path $PSScriptRoot '../clients/openai-server.mjs') $script_ -Force
            $env:CKLLM_BASE_URL = $base
            $env:CKLLM_API_KEY = $key
            $env:CKLLM_CHAT_MODEL = 'chat'
            $env:CKLLM_RAG_MODEL = "rag/$kbName"
            Push-Location $env:CKLLM_TEST_CLIENTS
            try { $output = node $script_ 2>&1 } finally { Pop-Location }
            $LASTEXITCODE | Should -Be 0 -Because ($output -join "`n")
            $script:node = ($output -join "`n") | ConvertFrom-Json -Depth 20
        }

        It 'lists the models and the served knowledge base' {
            $node.models | Should -Be @('chat', 'fixed', "rag/$kbName")
        }

        It "reports each model's context window as max_model_len" {
            $node.modelWindows.chat | Should -Be 1024
            $node.modelWindows."rag/$kbName" | Should -Be 1024 -Because 'a rag/ id reports the window of the model that answers it'
        }

        It 'completes a chat with usage' {
            $node.chat.object | Should -Be 'chat.completion'
            $node.chat.finish | Should -Be 'length'
            $node.chat.usage.completion_tokens | Should -Be 8
            $node.chat.usage.prompt_tokens | Should -BeGreaterThan 0
            $node.chat.usage.total_tokens | Should -Be ($node.chat.usage.prompt_tokens + $node.chat.usage.completion_tokens)
        }

        It 'streams the same chat as server-sent events (greedy: same text), with usage last' {
            $node.chatStream.content | Should -Be $node.chat.content
            $node.chatStream.chunks | Should -BeGreaterThan 2
            $node.chatStream.finish | Should -Be 'length'
            $node.chatStream.usage.completion_tokens | Should -Be 8
        }

        It 'answers a json_schema response format with JSON that follows the schema' {
            $node.jsonSchema.PSObject.Properties.Name | Should -Not -Contain 'error' -Because ($node.jsonSchema | ConvertTo-Json -Depth 5)
            $node.jsonSchema.parsed.color | Should -BeIn @('red', 'green')
            $node.jsonSchema.parsed.ok | Should -BeOfType [bool]
        }

        It 'continues a raw prompt on /v1/completions' {
            $node.completion.object | Should -Be 'text_completion'
            $node.completion.usage.completion_tokens | Should -Be 6
            $node.completion.text | Should -Not -BeNullOrEmpty
        }

        It 'answers several prompts with n choices each on /v1/completions, in OpenAI''s order' {
            $node.completionBatch.PSObject.Properties.Name | Should -Not -Contain 'error' -Because ($node.completionBatch | ConvertTo-Json -Depth 5)
            $choices = $node.completionBatch.choices
            $choices.index | Should -Be @(0, 1, 2, 3)
            # Greedy: each prompt's two choices and its single-prompt completion are the same text.
            $singles = $node.completionBatchSingles
            $choices[0].text | Should -Be $singles[0].text
            $choices[1].text | Should -Be $singles[0].text
            $choices[2].text | Should -Be $singles[1].text
            $choices[3].text | Should -Be $singles[1].text
            $singles[0].text | Should -Not -Be $singles[1].text
            $choices.finish | Should -Be @('length', 'length', 'length', 'length')
            $node.completionBatch.usage.completion_tokens | Should -Be 24
            # Each prompt's tokens count once, however many choices it has.
            $node.completionBatch.usage.prompt_tokens | Should -Be ($singles[0].usage.prompt_tokens + $singles[1].usage.prompt_tokens)
        }

        It 'streams the choices of several prompts with their index, usage last' {
            $stream = $node.completionBatchStream
            $stream.PSObject.Properties.Name | Should -Not -Contain 'error' -Because ($stream | ConvertTo-Json -Depth 5)
            0..3 | ForEach-Object { $stream.texts."$_" | Should -Be $node.completionBatch.choices[$_].text }
            0..3 | ForEach-Object { $stream.finishes."$_" | Should -Be 'length' }
            $stream.usage.completion_tokens | Should -Be 24
            $stream.usage.prompt_tokens | Should -Be $node.completionBatch.usage.prompt_tokens
        }

        It 'samples n different choices with a seed' {
            $sampled = @($node.completionSampled)
            $sampled.Count | Should -Be 3 -Because ($node.completionSampled | ConvertTo-Json -Depth 5)
            @($sampled | Sort-Object -Unique -CaseSensitive).Count | Should -Be 3
        }

        It 'refuses more choices than the server generates at once with 400' {
            $node.completionTooMany.error.status | Should -Be 400
            $node.completionTooMany.error.message | Should -Match '128 choices'
        }

        It "embeds with the knowledge base's embedder (base64, as the client asks by default)" {
            $node.embeddings.count | Should -Be 2
            $node.embeddings.dimensions | Should -Be 384
            # Unit length: the embedder's vectors are L2-normalised, so the client decoded the right floats.
            foreach ($norm in $node.embeddings.norms) { [math]::Abs($norm - 1) | Should -BeLessThan 1e-3 }
        }

        It 'answers a rag/ model from the knowledge base with [n] markers and citations' {
            $node.rag.content | Should -Be '[1]'
            $node.rag.citations.Count | Should -BeGreaterThan 0
            $first = $node.rag.citations[0]
            $first.number | Should -Be 1
            $first.source | Should -Be (Join-Path $fx.Docs 'volcano.md')
            $first.cited | Should -BeTrue
            $first.line_start | Should -BeGreaterThan 0
            $node.ragStream.content | Should -Be '[1]'
            $node.ragStream.citations[0].source | Should -Be $first.source
        }

        It 'gets 404 for an unknown model and 401 for a wrong key' {
            $node.unknownModel.error.status | Should -Be 404
            $node.unknownModel.error.code | Should -Be 'model_not_found'
            $node.wrongKey.error.status | Should -Be 401
        }
    }

    Context 'raw HTTP' {
        It 'refuses a request without the key with 401 and a JSON error' {
            $r = Send-Raw "$base/chat/completions" ([Text.Encoding]::UTF8.GetBytes('{}'))
            $r.Status | Should -Be 401
            $r.Json.error.type | Should -Be 'authentication_error'
        }

        It 'returns Search-CkKnowledge hits from /v1/search' {
            $r = Send-Json "$base/search" @{ knowledge_base = $kbName; query = 'Kilauea shield volcano'; top = 2; mode = 'Keyword' } -Key $key
            $r.Status | Should -Be 200
            $expected = Search-CkKnowledge 'Kilauea shield volcano' -KnowledgeBase $fx.KnowledgeBase -Top 2 -Mode Keyword
            $r.Json.data.source | Should -Be $expected.Source
            $r.Json.data[0].line_start | Should -Be $expected[0].LineStart
        }

        It "tokenizes with the served model's tokenizer at llama.cpp's /tokenize, and a remote CkLlm model uses it" {
            $root = $server.Url.AbsoluteUri
            $r = Send-Json "${root}tokenize" @{ content = 'Kilauea is a shield volcano'; model = 'chat' } -Key $key
            $r.Status | Should -Be 200
            $r.Json.tokens.Count | Should -BeGreaterThan 3
            $back = Send-Json "${root}detokenize" @{ tokens = $r.Json.tokens; model = 'chat' } -Key $key
            $back.Json.content.Trim() | Should -Be 'Kilauea is a shield volcano'
            # What a client budgets with: Import-CkModel -Endpoint on this very server counts with its tokenizer.
            $remote = Import-CkModel -Endpoint $base -RemoteModel 'chat' -Name 'remote-chat' -ApiKey (ConvertTo-SecureString $key -AsPlainText -Force)
            try {
                $remote.TokenCounting | Should -Be 'server'
                $remote.ContextSize | Should -Be 1024
            }
            finally { Remove-CkModel 'remote-chat' -Confirm:$false }
        }

        It 'refuses a prompt larger than the context with 400 context_length_exceeded' {
            $long = 'word ' * 3000
            $r = Send-Json "$base/chat/completions" @{ model = 'chat'; messages = @(@{ role = 'user'; content = $long }) } -Key $key
            $r.Status | Should -Be 400
            $r.Json.error.code | Should -Be 'context_length_exceeded'
        }

        It 'refuses a batch of prompts with one too large for the context with 400, and stops the others' {
            $long = 'word ' * 3000
            $before = @($server.Batching | Where-Object Model -EQ 'chat')[0]
            $r = Send-Json "$base/completions" @{ model = 'chat'; prompt = @('Once upon a time', $long); n = 2; max_tokens = 200 } -Key $key
            $r.Status | Should -Be 400
            $r.Json.error.code | Should -Be 'context_length_exceeded'
            # The short prompt's choices were queued, then cancelled: a second later, far fewer than their 2 x 200 tokens
            # were generated (the Tiny model makes hundreds a second).
            Start-Sleep -Seconds 1
            $after = @($server.Batching | Where-Object Model -EQ 'chat')[0]
            ($after.GeneratedTokens - $(if ($before) { $before.GeneratedTokens } else { 0 })) | Should -BeLessThan 100
            $ok = Send-Json "$base/completions" @{ model = 'chat'; prompt = 'Once upon a time'; max_tokens = 2 } -Key $key
            $ok.Status | Should -Be 200
        }

        It 'refuses a body over the size limit with 413' {
            $r = Send-Raw "$base/embeddings" ([byte[]]::new(9MB)) -Key $key
            $r.Status | Should -Be 413
            $r.Json.error | Should -Not -BeNullOrEmpty
        }

        It 'refuses an unsupported JSON schema with 400 naming the keyword' {
            $r = Send-Json "$base/chat/completions" @{ model = 'chat'; messages = @(@{ role = 'user'; content = 'x' })
                response_format = @{ type = 'json_schema'; json_schema = @{ name = 'x'; schema = @{ type = 'string'; pattern = 'a+' } } } } -Key $key
            $r.Status | Should -Be 400
            $r.Json.error.message | Should -Match 'pattern'
        }
    }
}
