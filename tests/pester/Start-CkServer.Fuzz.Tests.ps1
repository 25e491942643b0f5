# 1,000 malformed or fuzzed request bodies against a running server: every one gets a 4xx OpenAI error body, the server
# keeps serving, and the shell (this process) survives. Every case is invalid by construction (a truncated object, a
# field of the wrong type or out of range, a non-object root, invalid UTF-8, nesting beyond the reader's depth, a
# wrong content type), so "4xx" is the only right answer; the seed is printed so a failure can be replayed.
BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Rag.TestHelpers.ps1')
    Get-CkModel | Remove-CkModel -Confirm:$false
    $script:fx = New-RagTestFixture
    $null = Import-CkModel $fx.Model -Name 'chat' -ContextSize 1024
    $script:kbName = Split-Path $fx.KnowledgeBase -Leaf
    $script:server = Start-CkServer -Port 0 -KnowledgeBase $fx.KnowledgeBase
    $script:base = $server.Url.AbsoluteUri + 'v1'
    $script:http = [System.Net.Http.HttpClient]::new()
    $script:http.Timeout = [TimeSpan]::FromSeconds(60)

    function Send-Body([string] $Path, [byte[]] $Body, [string] $ContentType = 'application/json') {
        # '/tokenize' and '/detokenize' (llama.cpp's) are at the server's root, the OpenAI API under /v1.
        $uri = if ($Path.StartsWith('/')) { $server.Url.AbsoluteUri.TrimEnd('/') + $Path } else { "$base/$Path" }
        $request = [System.Net.Http.HttpRequestMessage]::new([System.Net.Http.HttpMethod]::Post, $uri)
        $request.Content = [System.Net.Http.ByteArrayContent]::new($Body)
        if ($ContentType) { $request.Content.Headers.ContentType = [System.Net.Http.Headers.MediaTypeHeaderValue]::Parse($ContentType) }
        $response = $http.SendAsync($request).GetAwaiter().GetResult()
        $text = $response.Content.ReadAsStringAsync().GetAwaiter().GetResult()
        [pscustomobject]@{ Status = [int]$response.StatusCode; Text = $text }
    }

    $utf8 = [Text.UTF8Encoding]::new($false)
    # Valid bodies per endpoint; each case breaks one of them.
    $script:bases = @{
        'chat/completions' = [ordered]@{ model = 'chat'; messages = @(@{ role = 'user'; content = 'hi' }); max_tokens = 1; temperature = 0 }
        'completions'      = [ordered]@{ model = 'chat'; prompt = 'hi'; max_tokens = 1; temperature = 0 }
        'embeddings'       = [ordered]@{ model = "rag/$kbName"; input = 'hi' }
        'search'           = [ordered]@{ knowledge_base = $kbName; query = 'hi'; top = 1 }
        '/tokenize'        = [ordered]@{ content = 'hi'; add_special = $true }
        '/detokenize'      = [ordered]@{ tokens = @(1, 2) }
    }
    $sampling = @{
        max_tokens = @(-1, 0, 1.5, 'x', 1e30, $true, @())
        temperature = @(-1, 3, 'x', @(), @{ a = 1 })
        top_p = @(0, 1.5, -0.5, 'x')
        seed = @('x', 1.5, @())
        stop = @(5, @(1), @('a', 'b', 'c', 'd', 'e'), @(''), @{ a = 1 })
        n = @(2, 'x')
        stream = @('yes', 1)
        model = @(5, '', $null, 'no-such-model', @(), @{ a = 1 })
    }
    # /v1/completions takes several prompts and n > 1, up to the server's batch (8 at once): more is invalid.
    $completionSampling = $sampling.Clone()
    $completionSampling.n = @(0, -1, 'x', 1.5, 9, 1000)
    # Wrong values per field, per endpoint: each makes the request invalid on its own.
    $script:badValues = @{
        'chat/completions' = $sampling + @{
            messages = @(5, 'x', @(), @(5), @(@{ role = 'robot'; content = 'x' }), @(@{ content = 'x' }), @(@{ role = 'user' }),
                @(@{ role = 'user'; content = 5 }), @(@{ role = 'user'; content = @(@{ type = 'image_url' }) }), @{ a = 1 })
            response_format = @(5, @{ type = 'xml' }, @{ type = 'json_schema' }, @{ type = 'json_schema'; json_schema = @{ schema = 5 } },
                @{ type = 'json_schema'; json_schema = @{ name = 'x'; schema = @{ type = 'string'; pattern = 'a+' } } })
        }
        'completions'      = $completionSampling + @{ prompt = @(5, @(1, 2), @(), @('a', 5), @(, @('a')), $null, @{ a = 1 }, (@('a') * 9)); echo = @($true) }
        'embeddings'       = @{
            input = @(5, @(), @(1), @(''), '', $null, @{ a = 1 }); encoding_format = @('hex', 5); dimensions = @(3)
            model = @(5, '', $null, 'no-such-model')
        }
        'search'           = @{
            query = @('', 5, $null); top = @(0, 1000, 'x'); mode = @('Fuzzy', 5); min_score = @(-1, 'x')
            filter = @(5, @{ a = 5 }, @('a')); knowledge_base = @('no-such-kb', 5)
        }
        '/tokenize'        = @{
            content = @(5, $null, @(), @('a'), @{ a = 1 }, $true); add_special = @('x', 5); parse_special = @('x', @()); with_pieces = @($true)
            model = @(5, 'no-such-model', @())
        }
        # Ids outside the vocabulary must be refused before llama.cpp reads past its tables.
        '/detokenize'      = @{ tokens = @(5, 'x', $null, @('a'), @(-1), @(1, 99999999), @(1.5), @(1e30), @{ a = 1 }); model = @(5, 'no-such-model') }
    }

    # One invalid case: endpoint, body bytes, content type, and what was done.
    function New-FuzzCase([Random] $Random) {
        $path = @($bases.Keys)[$Random.Next($bases.Count)]
        $valid = $bases[$path]
        $json = $valid | ConvertTo-Json -Depth 10 -Compress
        switch ($Random.Next(8)) {
            { $_ -le 2 } {
                $fields = @($badValues[$path].Keys)
                $field = $fields[$Random.Next($fields.Count)]
                $values = $badValues[$path][$field]
                $value = $values[$Random.Next($values.Count)]
                $body = [ordered]@{} + $valid
                $body[$field] = $value
                return @{ Path = $path; Bytes = $utf8.GetBytes(($body | ConvertTo-Json -Depth 10 -Compress)); Type = 'application/json'; What = "$field = $(ConvertTo-Json $value -Compress -Depth 5)" }
            }
            3 {
                $cut = $Random.Next(1, $json.Length - 1)
                return @{ Path = $path; Bytes = $utf8.GetBytes($json.Substring(0, $cut)); Type = 'application/json'; What = "truncated at $cut" }
            }
            4 {
                $roots = @('[]', '3', '"text"', 'null', 'true', '', ' ', '{', ('x' + $json), "[$json]")
                $root = $roots[$Random.Next($roots.Count)]
                return @{ Path = $path; Bytes = $utf8.GetBytes($root); Type = 'application/json'; What = "root $root" }
            }
            5 {
                # Invalid UTF-8 (a lone continuation byte or a truncated sequence) inside a string value.
                $bytes = [Collections.Generic.List[byte]]::new($utf8.GetBytes($json))
                $quote = $bytes.IndexOf([byte][char]'"', $Random.Next(1, $bytes.Count - 2))
                if ($quote -lt 0) { $quote = $bytes.IndexOf([byte][char]'"') }
                $bad = @(@(0x80), @(0xC3, 0x28), @(0xE2, 0x82), @(0xFF))[$Random.Next(4)]
                $bytes.InsertRange($quote + 1, [byte[]]$bad)
                return @{ Path = $path; Bytes = $bytes.ToArray(); Type = 'application/json'; What = "invalid UTF-8 after byte $quote" }
            }
            6 {
                $depth = $Random.Next(70, 400)
                $nested = ('[' * $depth) + (']' * $depth)
                $text = $json.Substring(0, $json.Length - 1) + ",`"deep`":$nested}"
                return @{ Path = $path; Bytes = $utf8.GetBytes($text); Type = 'application/json'; What = "nesting $depth" }
            }
            7 {
                $types = @('text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'image/png')
                $type = $types[$Random.Next($types.Count)]
                return @{ Path = $path; Bytes = $utf8.GetBytes($json); Type = $type; What = "content type $type" }
            }
        }
    }
}

AfterAll {
    Stop-CkServer -ErrorAction SilentlyContinue
    $http.Dispose()
    Remove-RagTestFixture $script:fx
}

Describe 'Start-CkServer under malformed and fuzzed requests' {
    It 'answers 1,000 invalid bodies with 4xx OpenAI error JSON and keeps serving' {
        $seed = if ($env:CKLLM_SERVER_FUZZ_SEED) { [int]$env:CKLLM_SERVER_FUZZ_SEED } else { Get-Random -Maximum 1000000 }
        Write-Host "Server fuzz seed: $seed (set CKLLM_SERVER_FUZZ_SEED to replay)"
        $random = [Random]::new($seed)
        $wrong = [Collections.Generic.List[string]]::new()
        $statuses = @{}
        for ($i = 0; $i -lt 1000; $i++) {
            $case = New-FuzzCase $random
            $response = Send-Body $case.Path $case.Bytes $case.Type
            $statuses[$response.Status] = 1 + [int]$statuses[$response.Status]
            $error_ = try { ($response.Text | ConvertFrom-Json -Depth 50).error } catch { $null }
            if ($response.Status -lt 400 -or $response.Status -ge 500 -or -not $error_ -or -not $error_.message -or -not $error_.type) {
                $wrong.Add("#$i $($case.Path) [$($case.What)] -> $($response.Status) $($response.Text.Substring(0, [Math]::Min(200, $response.Text.Length)))")
            }
        }
        $wrong | Should -BeNullOrEmpty -Because "every invalid request gets a 4xx JSON error (seed $seed)"
        $statuses.Keys | Should -Contain 400
        $statuses.Keys | Should -Contain 404

        # Still serving, and none of it counted as a server failure.
        $answer = Send-Body 'chat/completions' ($utf8.GetBytes(($bases['chat/completions'] | ConvertTo-Json -Depth 10 -Compress)))
        $answer.Status | Should -Be 200
        ($answer.Text | ConvertFrom-Json).choices[0].finish_reason | Should -BeIn @('stop', 'length')
        (Get-CkServer -Id $server.Id).FailedRequests | Should -Be 0
        (Get-CkServer -Id $server.Id).State | Should -Be 'Running'
    }
}
