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

        It 'declares the retrieval parameters once for Search-CkKnowledge, Invoke-CkRag and Measure-CkRetrieval' {
            foreach ($parameter in 'KnowledgeBase', 'Top', 'Filter', 'Rerank', 'Mode', 'MinScore') {
                $declaring = foreach ($type in [CkLlm.Commands.SearchCkKnowledgeCommand], [CkLlm.Commands.InvokeCkRagCommand], [CkLlm.Commands.MeasureCkRetrievalCommand]) {
                    $property = $type.GetProperty($parameter)
                    if ($property) { $property.DeclaringType.Name } else { 'none' }
                }
                "$parameter $declaring" | Should -BeIn @(
                    "$parameter KnowledgeCommandBase KnowledgeCommandBase KnowledgeCommandBase",
                    "$parameter RetrievalCommandBase RetrievalCommandBase RetrievalCommandBase",
                    # Measure-CkRetrieval scores several modes at once (a list) and has no score floor.
                    "$parameter QueryRetrievalCommandBase QueryRetrievalCommandBase MeasureCkRetrievalCommand",
                    "$parameter QueryRetrievalCommandBase QueryRetrievalCommandBase none")
            }
        }

        It 'binds -Top exactly in Invoke-CkRag beside the sampling parameters -TopK and -TopP' {
            $kb = Join-Path $dir 'kb-top'
            Add-CkKnowledge -Text 'Rivers carry water to the sea.', 'Mountains rise above the plain.' -Source notes -KnowledgeBase $kb | Out-Null
            $answer = Invoke-CkRag 'rivers' -Top 1 -TopK 5 -TopP 0.9 -KnowledgeBase $kb -MaxTokens 2 -Temperature 0 -Model (Import-CkModel $tiny -Name 'rag-top' -ContextSize 2048)
            $answer.Citations.Count | Should -Be 1
        }

        It 'rejects an out-of-range -Top in Invoke-CkRag and an unknown -Mode in Measure-CkRetrieval before touching the knowledge base' {
            { Invoke-CkRag 'x' -Top 0 -KnowledgeBase (Join-Path $dir 'never') } |
                Should -Throw -ErrorId 'ParameterArgumentValidationError,CkLlm.Commands.InvokeCkRagCommand'
            { Measure-CkRetrieval -Path (Join-Path $dir 'q.csv') -Mode Fuzzy -KnowledgeBase (Join-Path $dir 'never') } |
                Should -Throw -ErrorId 'ParameterArgumentValidationError,CkLlm.Commands.MeasureCkRetrievalCommand'
            Test-Path (Join-Path $dir 'never') | Should -BeFalse
        }

        It 'declares the sampling parameters once for Invoke-CkCompletion, Invoke-CkRag and Invoke-CkChat' {
            foreach ($parameter in 'MaxTokens', 'Temperature', 'TopK', 'TopP', 'MinP', 'RepeatPenalty', 'Seed', 'Stop', 'Stream') {
                $bound = foreach ($cmdlet in 'Invoke-CkCompletion', 'Invoke-CkRag', 'Invoke-CkChat') { (Get-Command $cmdlet).Parameters[$parameter].IsDynamic }
                $declaring = [CkLlm.Commands.GenerationParameters].GetProperty($parameter).DeclaringType.Name
                "$parameter $bound $declaring" | Should -Be "$parameter True True True SamplingParameters"
            }
            foreach ($parameter in 'System', 'Model') {
                $bound = foreach ($cmdlet in 'Invoke-CkCompletion', 'Invoke-CkRag') { (Get-Command $cmdlet).Parameters[$parameter].IsDynamic }
                $declaring = [CkLlm.Commands.GenerationParameters].GetProperty($parameter).DeclaringType.Name
                "$parameter $bound $declaring" | Should -Be "$parameter True True GenerationParameters"
            }
        }
    }
}
