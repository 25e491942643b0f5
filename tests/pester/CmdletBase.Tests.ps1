# What every cmdlet gets from the shared base classes: capturable streamed text, one error table, shared parameter ranges.
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

Describe 'The cmdlet base' {
    Context 'streamed text' {
        BeforeAll { $script:plain = Import-CkModel $tiny -ContextSize 256 }

        It 'Invoke-CkCompletion -Stream writes the text to the information stream, where 6>&1 captures it' {
            $all = Invoke-CkCompletion 'Hello' -MaxTokens 12 -Temperature 0 -Stream 6>&1
            $records = @($all | Where-Object { $_ -is [System.Management.Automation.InformationRecord] })
            $result = @($all | Where-Object { $_ -isnot [System.Management.Automation.InformationRecord] })
            $result.Count | Should -Be 1
            $records.Count | Should -BeGreaterThan 1
            $records[0].Tags | Should -Contain 'PSHOST'
            ($records | ForEach-Object { "$($_.MessageData)" }) -join '' | Should -Be $result[0].Text
        }

        It 'without -Stream writes nothing to the information stream' {
            $null = Invoke-CkCompletion 'Hello' -MaxTokens 4 -Temperature 0 -InformationVariable info
            $info.Count | Should -Be 0
        }
    }

    Context 'errors from the one table' {
        It 'names a model that is not loaded the same way in Invoke-CkCompletion and Invoke-CkRag' {
            Invoke-CkCompletion 'x' -Model 'no-such-model' -ErrorAction SilentlyContinue -ErrorVariable completionErrors | Should -BeNullOrEmpty
            Invoke-CkRag 'x' -Model 'no-such-model' -KnowledgeBase (Join-Path $dir 'kb') -ErrorAction SilentlyContinue -ErrorVariable ragErrors | Should -BeNullOrEmpty
            $completionErrors[0].FullyQualifiedErrorId | Should -BeLike 'NoModelLoaded,*'
            $ragErrors[0].FullyQualifiedErrorId | Should -BeLike 'NoModelLoaded,*'
            $completionErrors[0].TargetObject | Should -Be 'no-such-model'
        }

        It 'reports an invalid model file as a non-terminating InvalidModelFile error and goes on with the next path' {
            $bad = Join-Path $dir 'bad.gguf'
            Set-Content -LiteralPath $bad -Value 'not a gguf'
            $loaded = @($bad, $tiny) | Import-CkModel -ErrorAction SilentlyContinue -ErrorVariable problems
            $problems[0].FullyQualifiedErrorId | Should -BeLike 'InvalidModelFile,*'
            $problems[0].CategoryInfo.Category | Should -Be 'InvalidData'
            @($loaded).Count | Should -Be 1
        }

        It 'reports a missing name with ModelNotFound in Get-CkModel and Remove-CkModel' {
            Get-CkModel 'absent' -ErrorAction SilentlyContinue -ErrorVariable getErrors | Should -BeNullOrEmpty
            Remove-CkModel 'absent' -ErrorAction SilentlyContinue -ErrorVariable removeErrors
            $getErrors[0].FullyQualifiedErrorId | Should -BeLike 'ModelNotFound,*'
            $removeErrors[0].FullyQualifiedErrorId | Should -BeLike 'ModelNotFound,*'
            $removeErrors[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        }
    }

    Context 'shared parameter ranges' {
        It 'gives -Top the same range in Search-CkKnowledge, Invoke-CkRag and Measure-CkRetrieval' {
            foreach ($name in 'Search-CkKnowledge', 'Invoke-CkRag', 'Measure-CkRetrieval') {
                $range = (Get-Command $name).Parameters['Top'].Attributes | Where-Object { $_ -is [ValidateRange] }
                "$name $($range.MinRange)-$($range.MaxRange)" | Should -Be "$name 1-1000"
            }
        }

        It 'rejects an unknown -Mode before touching the knowledge base' {
            { Search-CkKnowledge 'x' -Mode Fuzzy -KnowledgeBase (Join-Path $dir 'never') } |
                Should -Throw -ErrorId 'ParameterArgumentValidationError,CkLlm.Commands.SearchCkKnowledgeCommand'
            Test-Path (Join-Path $dir 'never') | Should -BeFalse
        }

        It 'declares the sampling parameters once for Invoke-CkCompletion and Invoke-CkRag' {
            foreach ($parameter in 'MaxTokens', 'Temperature', 'TopK', 'TopP', 'MinP', 'RepeatPenalty', 'Seed', 'Stop', 'Stream', 'System', 'Model') {
                $completion = [CkLlm.Commands.InvokeCkCompletionCommand].GetProperty($parameter).DeclaringType.Name
                $rag = [CkLlm.Commands.InvokeCkRagCommand].GetProperty($parameter).DeclaringType.Name
                "$parameter $completion $rag" | Should -Be "$parameter GenerationCommandBase GenerationCommandBase"
            }
        }
    }
}
