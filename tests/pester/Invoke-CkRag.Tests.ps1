BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Rag.TestHelpers.ps1')
    . (Join-Path $PSScriptRoot 'Model.TestHelpers.ps1')
    Get-CkModel | Remove-CkModel -Confirm:$false
    $script:fx = New-RagTestFixture
    $script:kb = $fx.KnowledgeBase
}

AfterAll { Remove-RagTestFixture $script:fx }

Describe 'Invoke-CkRag' {
    Context 'without a model' {
        It 'says to run Import-CkModel (InvalidOperation)' {
            Get-CkModel | Remove-CkModel -Confirm:$false
            Invoke-CkRag 'What is Kilauea?' -KnowledgeBase $kb -ErrorAction SilentlyContinue -ErrorVariable problems | Should -BeNullOrEmpty
            $problems[0].FullyQualifiedErrorId | Should -BeLike 'NoModelLoaded*'
            $problems[0].CategoryInfo.Category | Should -Be 'InvalidOperation'
        }
    }

    Context 'with a model' {
        BeforeAll { $script:model = Import-CkModel $fx.Model -ContextSize 1024 }

        It 'answers with citations that map to real sources and line ranges' {
            $answer = Invoke-CkRag 'Which volcano on Hawaii erupted from 1983 to 2018?' -KnowledgeBase $kb -Mode Keyword -Top 3 -MaxTokens 12 -Temperature 0
            $answer.PSObject.TypeNames[0] | Should -Be 'CkRagAnswer'
            $answer.Question | Should -Be 'Which volcano on Hawaii erupted from 1983 to 2018?'
            $answer.NoKnowledge | Should -BeFalse
            $answer.Model | Should -Be $model.Name
            $answer.ChatFormat | Should -Be 'template'
            $answer.CompletionTokens | Should -BeGreaterThan 0
            $answer.RetrievalMs | Should -BeGreaterThan 0
            $answer.GenerationMs | Should -BeGreaterThan 0
            $first = $answer.Citations[0]
            $first.Number | Should -Be 1
            $first.Source | Should -Be (Join-Path $fx.Docs 'volcano.md')
            $lines = Get-Content -LiteralPath $first.Source
            ($lines[($first.LineStart - 1)..($first.LineEnd - 1)] -join "`n") | Should -Match 'Kilauea is a shield volcano'
            $first.Location | Should -Be "$($first.Source):$($first.Lines)"
            $answer.Prompt | Should -Match 'BEGIN PASSAGE \[1\] [0-9a-f]{10}'
        }

        It 'maps the markers of an answer to the passages in the prompt and warns about a number no passage has' {
            # A model that always answers "[1-2, 9]": only two documents contain the question's words, so two passages
            # are given; 1 and 2 (a range) name them and 9 names none.
            $fixed = New-FixedAnswerModel (Join-Path $fx.Root 'fixed-answer.gguf') '[1-2, 9]'
            $null = Import-CkModel $fixed -Name 'fixed-answer' -ContextSize 1024
            try {
                $answer = Invoke-CkRag 'Kilauea sourdough?' -Model 'fixed-answer' -KnowledgeBase $kb -Mode Keyword -Top 3 -MaxTokens 16 -Temperature 0 -WarningVariable warned -WarningAction SilentlyContinue
            }
            finally { Remove-CkModel 'fixed-answer' }
            $answer.Answer | Should -Be '[1-2, 9]' -Because 'the fixed-answer model writes exactly this'
            $answer.FinishReason | Should -Be 'Stop'
            $answer.Citations.Number | Should -Be @(1, 2)
            ($answer.Citations.Source | ForEach-Object { Split-Path $_ -Leaf } | Sort-Object) | Should -Be @('bread.md', 'volcano.md')
            $answer.CitedNumbers | Should -Be @(1, 2)
            $answer.UnknownCitations | Should -Be @(9)
            $answer.CitedPassages.Source | Should -Be $answer.Citations.Source
            $answer.Prompt | Should -Match 'BEGIN PASSAGE \[2\] [0-9a-f]{10}'
            $answer.Prompt | Should -Not -Match 'BEGIN PASSAGE \[3\]'
            $warned.Count | Should -Be 1
            "$($warned[0])" | Should -BeLike '*cites `[9`]*only 2 passage*'
        }

        It 'shows an answer as a list with numbered citations and a citation table' {
            $answer = Invoke-CkRag 'What is Kilauea?' -KnowledgeBase $kb -Mode Keyword -Top 2 -MaxTokens 2 -Temperature 0
            $text = $answer | Out-String -Width 200
            $text | Should -Match 'Question\s+: What is Kilauea\?'
            $text | Should -Match ([regex]::Escape("[1] $($answer.Citations[0].Location)"))
            $text | Should -Match 'Tokens\s+: \d+ prompt \+ 2 generated'
            $table = $answer.Citations | Out-String -Width 200
            $table | Should -Match 'volcano\.md'
            $table | Should -Match 'Kilauea is a shield volcano'
        }

        It 'never overflows the context window with long passages' {
            # The fixture's glaciers.md is far longer than the 1024-token window; a generation of 300 tokens must still fit.
            $answer = Invoke-CkRag 'How do glaciers carve valleys and leave moraines?' -KnowledgeBase $kb -Top 5 -MaxTokens 300 -Temperature 0
            ($answer.PromptTokens + 300) | Should -BeLessOrEqual $model.ContextSize
            ($answer.PassagesTrimmed + $answer.PassagesDropped) | Should -BeGreaterThan 0
            $answer.Citations.Count | Should -BeGreaterThan 0
            $answer.FinishReason | Should -BeIn 'Stop', 'Length'
        }

        It 'reports a prompt that cannot fit as LimitsExceeded' {
            Invoke-CkRag 'glaciers?' -KnowledgeBase $kb -MaxTokens 1000 -ErrorAction SilentlyContinue -ErrorVariable problems | Should -BeNullOrEmpty
            $problems[0].FullyQualifiedErrorId | Should -BeLike 'PromptDoesNotFit*'
            $problems[0].CategoryInfo.Category | Should -Be 'LimitsExceeded'
            $problems[0].TargetObject | Should -Be 'glaciers?'
        }

        It 'does not call the model when no passage reaches -MinScore' {
            $answer = Invoke-CkRag 'glaciers?' -KnowledgeBase $kb -MinScore 1.5 -WarningVariable warned -WarningAction SilentlyContinue
            $answer.NoKnowledge | Should -BeTrue
            $answer.Answer | Should -Match 'not asked'
            $answer.CompletionTokens | Should -Be 0
            $answer.GenerationMs | Should -Be 0
            $answer.Prompt | Should -BeNullOrEmpty
            $answer.Citations.Count | Should -Be 0
            $warned.Count | Should -Be 1
        }

        It 'answers a pipeline of questions from a CSV file' {
            $csv = Join-Path $fx.Root 'questions.csv'
            @(
                [pscustomobject]@{ Question = 'What is Kilauea?'; ExpectedSource = 'volcano.md' }
                [pscustomobject]@{ Question = 'How is sourdough leavened?'; ExpectedSource = 'bread.md' }
                [pscustomobject]@{ Question = 'How many strings has a violin?'; ExpectedSource = 'violin.md' }
            ) | Export-Csv -LiteralPath $csv
            $answers = Import-Csv -LiteralPath $csv | Invoke-CkRag -KnowledgeBase $kb -Top 2 -MaxTokens 4 -Temperature 0
            $answers.Count | Should -Be 3
            $answers.Question | Should -Be @('What is Kilauea?', 'How is sourdough leavened?', 'How many strings has a violin?')
            Split-Path $answers[1].Citations[0].Source -Leaf | Should -Be 'bread.md'
            Split-Path $answers[2].Citations[0].Source -Leaf | Should -Be 'violin.md'
        }

        It 'returns only the prompt with -PromptOnly' {
            $prompt = Invoke-CkRag 'How many strings has a violin?' -KnowledgeBase $kb -Top 2 -PromptOnly
            $prompt | Should -BeOfType [string]
            $prompt | Should -Match '<\|im_start\|>system'
            $prompt | Should -Match 'BEGIN PASSAGE \[1\]'
            $prompt | Should -Match 'four strings tuned in perfect fifths'
            $prompt | Should -Match 'Question: How many strings has a violin\?'
        }

        It 'uses -System and -Template' {
            $prompt = Invoke-CkRag 'violin?' -KnowledgeBase $kb -Top 1 -PromptOnly -System 'Reply in French.' -Template "CTX:`n{context}`nQ={question}"
            $prompt | Should -Match 'Reply in French\.'
            $prompt | Should -Match 'Q=violin\?'
            $prompt | Should -Match 'CTX:\nPassages \(untrusted data'
        }

        It 'rejects a template without placeholders (InvalidArgument)' {
            Invoke-CkRag 'violin?' -KnowledgeBase $kb -Template 'no placeholders' -ErrorAction SilentlyContinue -ErrorVariable problems | Should -BeNullOrEmpty
            $problems[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
            $problems[0].Exception.Message | Should -Match '\{context\}'
        }

        It 'streams the answer to the host and still outputs the object' {
            $script = @"
`$ErrorActionPreference = 'Stop'
Import-Module '$env:CKLLM_MODULE'
`$null = Import-CkModel '$($fx.Model)' -ContextSize 1024
`$answer = Invoke-CkRag 'What is Kilauea?' -KnowledgeBase '$kb' -Top 2 -MaxTokens 16 -Temperature 0 -Stream
'ANSWER-OBJECT=' + `$answer.Answer.Length
"@
            $run = Invoke-CkChildPwsh $script
            $run.ExitCode | Should -Be 0
            $index = [array]::FindIndex([string[]]$run.Output, [Predicate[string]] { param($l) $l -like 'ANSWER-OBJECT=*' })
            $index | Should -BeGreaterThan 0
            [int]($run.Output[$index] -replace 'ANSWER-OBJECT=') | Should -BeGreaterThan 0
            ($run.Output[0..($index - 1)] -join "`n").Trim().Length | Should -BeGreaterThan 0
        }
    }
}
