BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Model.TestHelpers.ps1')
    Clear-CkTestModels
    $script:dir = New-CkTestModelFolder
    $script:tiny = Join-Path $dir 'tiny.gguf'
    $script:chat = Join-Path $dir 'tiny-chat.gguf'
}

AfterAll {
    Clear-CkTestModels
    Remove-Item $script:dir -Recurse -Force -ErrorAction Ignore
}

Describe 'Invoke-CkCompletion' {
    Context 'without a model' {
        It 'says to run Import-CkModel (InvalidOperation)' {
            Clear-CkTestModels
            Invoke-CkCompletion 'hello' -ErrorAction SilentlyContinue -ErrorVariable problems | Should -BeNullOrEmpty
            $problems[0].CategoryInfo.Category | Should -Be 'InvalidOperation'
            $problems[0].Exception.Message | Should -Be 'No model is loaded. Run Import-CkModel first.'
        }
    }

    Context 'with models loaded' {
        BeforeAll {
            $script:chatModel = Import-CkModel $chat -ContextSize 512
            $script:plain = Import-CkModel $tiny -ContextSize 512
        }

        It 'completes a prompt with the current model' {
            $result = Invoke-CkCompletion 'Once upon a time' -MaxTokens 8 -Temperature 0
            $result.GetType().FullName | Should -Be 'CkLlm.Engine.Inference.CompletionResult'
            $result.Model | Should -Be 'tiny'
            $result.Prompt | Should -Be 'Once upon a time'
            $result.Text | Should -Not -BeNullOrEmpty
            $result.PromptTokens | Should -BeGreaterThan 1
            $result.CompletionTokens | Should -Be 8
            $result.FinishReason | Should -Be 'Length'
            $result.TokensPerSecond | Should -BeGreaterThan 0
        }

        It 'is deterministic at temperature 0 and with a fixed seed' {
            $a = Invoke-CkCompletion 'The sea' -MaxTokens 16 -Temperature 0
            $b = Invoke-CkCompletion 'The sea' -MaxTokens 16 -Temperature 0
            $a.Text | Should -Be $b.Text
            $s1 = Invoke-CkCompletion 'The sea' -MaxTokens 16 -Temperature 1.5 -TopK 0 -TopP 1 -MinP 0 -Seed 42
            $s2 = Invoke-CkCompletion 'The sea' -MaxTokens 16 -Temperature 1.5 -TopK 0 -TopP 1 -MinP 0 -Seed 42
            $s3 = Invoke-CkCompletion 'The sea' -MaxTokens 16 -Temperature 1.5 -TopK 0 -TopP 1 -MinP 0 -Seed 43
            $s1.Text | Should -Be $s2.Text
            $s1.Text | Should -Not -Be $s3.Text
        }

        It 'completes every piped prompt and uses a named model' {
            $results = 'one', 'two', 'three' | Invoke-CkCompletion -MaxTokens 3 -Temperature 0 -Model 'tiny-chat'
            $results.Count | Should -Be 3
            $results.Prompt | Should -Be @('one', 'two', 'three')
            $results.Model | Should -Be @('tiny-chat', 'tiny-chat', 'tiny-chat')
            (Invoke-CkCompletion 'x' -MaxTokens 1 -Model $plain).Model | Should -Be 'tiny'
        }

        It 'ends before a stop string' {
            $full = Invoke-CkCompletion 'In the beginning' -MaxTokens 30 -Temperature 0
            $stop = $full.Text.Substring(5, 4)
            $stopped = Invoke-CkCompletion 'In the beginning' -MaxTokens 30 -Temperature 0 -Stop $stop
            $stopped.FinishReason | Should -Be 'Stop'
            $stopped.Text | Should -Be $full.Text.Substring(0, $full.Text.IndexOf($stop, [StringComparison]::Ordinal))
        }

        It 'constrains output with a GBNF grammar' {
            foreach ($seed in 1..3) {
                $result = Invoke-CkCompletion 'Answer:' -Grammar 'root ::= "yes" | "no"' -Temperature 1 -Seed $seed -MaxTokens 8
                $result.Text | Should -BeIn @('yes', 'no')
                $result.FinishReason | Should -Be 'Stop'
            }
        }

        It 'follows a JSON schema and returns objects with -AsObject' {
            $schema = @{
                type       = 'object'
                properties = @{ color = @{ enum = @('red', 'green') }; size = @{ type = 'integer' }; ok = @{ type = 'boolean' } }
                required   = @('color', 'size', 'ok')
            }
            $object = Invoke-CkCompletion 'JSON:' -JsonSchema $schema -AsObject -Temperature 0.7 -Seed 5 -MaxTokens 100
            $object | Should -BeOfType [pscustomobject]
            $object.color | Should -BeIn @('red', 'green')
            $object.size | Should -BeOfType [long]
            $object.ok | Should -BeOfType [bool]
            $text = (Invoke-CkCompletion 'JSON:' -JsonSchema ($schema | ConvertTo-Json -Depth 5) -Temperature 0.7 -Seed 5 -MaxTokens 100).Text
            { $text | ConvertFrom-Json } | Should -Not -Throw
        }

        It 'reports output that is not JSON with -AsObject as InvalidResult' {
            Invoke-CkCompletion 'x' -Grammar 'root ::= "{" "a"' -AsObject -MaxTokens 5 -ErrorAction SilentlyContinue -ErrorVariable problems |
                Should -BeNullOrEmpty
            $problems[0].CategoryInfo.Category | Should -Be 'InvalidResult'
        }

        It 'rejects an unsupported JSON schema as InvalidArgument' {
            Invoke-CkCompletion 'x' -JsonSchema '{"type":"string","pattern":"a+"}' -ErrorAction SilentlyContinue -ErrorVariable problems |
                Should -BeNullOrEmpty
            $problems[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
            $problems[0].Exception.Message | Should -Match 'pattern'
        }

        It 'applies the model''s own chat template to -Messages and -System' {
            $result = Invoke-CkCompletion -Model 'tiny-chat' -System 'Be brief.' -Messages @{ Role = 'user'; Content = 'Hi there' } -MaxTokens 4 -Temperature 0
            $result.ChatFormat | Should -Be 'template'
            $result.Prompt | Should -Match '<\|im_start\|>system\nBe brief\.<\|im_end\|>'
            $result.Prompt | Should -Match '<\|im_start\|>user\nHi there<\|im_end\|>'
            $result.Prompt | Should -Match '<\|im_start\|>assistant\n$'
        }

        It 'uses the documented fallback for a model without a template' {
            $message = [pscustomobject]@{ Role = 'user'; Content = 'Hi there' }
            $result = Invoke-CkCompletion -Model 'tiny' -Messages $message -MaxTokens 4 -Temperature 0
            $result.ChatFormat | Should -Be 'fallback'
            $result.Prompt | Should -Be "<|im_start|>user`nHi there<|im_end|>`n<|im_start|>assistant`n"
        }

        It 'rejects a message without a role as InvalidArgument' {
            Invoke-CkCompletion -Messages @{ Content = 'x' } -ErrorAction SilentlyContinue -ErrorVariable problems | Should -BeNullOrEmpty
            $problems[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        }

        It 'stops within a token on Ctrl+C and the model stays usable' {
            $long = Import-CkModel $tiny -Name 'long' -ContextSize 16384
            $expected = (Invoke-CkCompletion 'Count' -Model 'long' -MaxTokens 64 -Temperature 0)
            # What the full request would take on this machine right now: the bound below scales with the load.
            $fullSeconds = 16000 / $expected.TokensPerSecond
            $ps = [powershell]::Create()
            try {
                $null = $ps.AddScript("Import-Module '$env:CKLLM_MODULE'; 'GENERATING'; Invoke-CkCompletion 'Count' -Model 'long' -MaxTokens 16000 -Temperature 0")
                $output = [System.Management.Automation.PSDataCollection[psobject]]::new()
                $null = $ps.BeginInvoke([System.Management.Automation.PSDataCollection[psobject]]::new(), $output)
                # Event, not a sleep: the runspace says it has reached the completion call.
                $deadline = [DateTime]::UtcNow.AddMinutes(2)
                while ($output.Count -eq 0 -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 20 }
                $output.Count | Should -Be 1 -Because 'the runspace reached Invoke-CkCompletion'
                $clock = [Diagnostics.Stopwatch]::StartNew()
                $ps.Stop()
                $clock.Stop()
                $ps.InvocationStateInfo.State | Should -Be 'Stopped'
                # Stopped, not finished: no result came out, and far sooner than the 16000 tokens would take.
                @($output) | Should -Be @('GENERATING')
                $clock.Elapsed.TotalSeconds | Should -BeLessThan ($fullSeconds / 4)
            }
            finally { $ps.Dispose() }
            (Invoke-CkCompletion 'Count' -Model 'long' -MaxTokens 64 -Temperature 0).Text | Should -Be $expected.Text
            $long | Remove-CkModel
        }

        It 'streams to the host, and works after Logging.Abstractions 8.0 was loaded first (dependency isolation)' {
            $logging = Join-Path $env:CKLLM_TEST_PACKAGES 'microsoft.extensions.logging.abstractions/8.0.0/lib/net8.0/Microsoft.Extensions.Logging.Abstractions.dll'
            Test-Path $logging | Should -BeTrue
            $run = Invoke-CkChildPwsh @"
`$ErrorActionPreference = 'Stop'
Add-Type -Path '$logging'
'PRELOADED=' + ([AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { `$_.GetName().Name -eq 'Microsoft.Extensions.Logging.Abstractions' } | ForEach-Object { `$_.GetName().Version })
Import-Module '$env:CKLLM_MODULE'
`$null = Import-CkModel '$tiny'
`$result = Invoke-CkCompletion 'Hello' -MaxTokens 12 -Temperature 0 -Stream
'RESULT=' + `$result.Text.Length + ' ' + `$result.FinishReason
'TEXT=' + `$result.Text
"@
            $text = $run.Output -join "`n"
            $run.ExitCode | Should -Be 0 -Because $text
            $text | Should -Match 'PRELOADED=8\.0\.0\.0'
            $text | Should -Match 'RESULT=\d+ Length'
            $completion = $text.Substring($text.IndexOf('TEXT=') + 5).Trim()
            $completion | Should -Not -BeNullOrEmpty
            # The streamed copy is written to the host before the result lines.
            $streamed = $text.Substring(0, $text.IndexOf('RESULT='))
            $streamed.Contains($completion) | Should -BeTrue -Because "streamed: [$streamed] completion: [$completion]"
            $text | Should -Not -Match 'llama_model_load|load_tensors'
        }
    }
}
