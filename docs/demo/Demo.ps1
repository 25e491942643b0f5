#requires -Version 7.4
<#
.SYNOPSIS
    The main job, step by step: generate (or import) a model, stream a completion, build a knowledge base from the
    repository's own docs/, search it, answer a question from it with citations (RAG), and measure retrieval.
.DESCRIPTION
    Everything it writes goes to one temporary folder that is deleted at the end (the knowledge base included). With
    -Model, that GGUF file is imported instead of a generated one: use an instruct model with a chat template to get
    real answers; the generated model has random weights and answers with gibberish.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [string] $Model
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

function Write-Step([string] $Text) { Write-Host "`n==> $Text" -ForegroundColor Cyan }

Import-Module $ModulePath -Force
$work = Join-Path ([IO.Path]::GetTempPath()) "ckllm-demo-$([guid]::NewGuid().ToString('N'))"
New-Item -ItemType Directory -Path $work | Out-Null
try {
    $generated = -not $Model
    if ($generated) {
        Write-Step 'New-CkModel: writing a Small (~5M parameter) llama model with a ChatML chat template'
        $Model = Join-Path $work 'demo.gguf'
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $summary = New-CkModel -Path $Model -Preset Small -Seed 7 -ChatTemplate ChatML
        Write-Host ("Wrote {0} ({1:N0} parameters, {2:N1} MB, vocabulary {3}) in {4:N1} s. Its weights are random: expect noise, not answers." -f
            $summary.Path, $summary.ParameterCount, ($summary.FileSize / 1MB), $summary.VocabularySize, $clock.Elapsed.TotalSeconds)
    }

    Write-Step "Import-CkModel: validating the GGUF in managed code, then loading it into llama.cpp"
    $loaded = Import-CkModel -Path $Model -ContextSize 2048
    $loaded | Format-Table | Out-Host
    Write-Host "Loaded '$($loaded.Name)' in $([int]$loaded.LoadTime.TotalMilliseconds) ms; it is now the session's current model."

    Write-Step 'Invoke-CkCompletion -Stream: tokens are printed as they are generated'
    $result = Invoke-CkCompletion -Prompt 'Once upon a time' -MaxTokens 48 -Temperature 0.8 -Seed 1 -Stream
    Write-Host ("Generated {0} tokens at {1:N0} tokens/s after a {2}-token prompt ({3:N0} tokens/s); finished by {4}." -f
        $result.CompletionTokens, $result.TokensPerSecond, $result.PromptTokens, $result.PromptTokensPerSecond, $result.FinishReason)

    Write-Step "Invoke-CkCompletion -Messages: a chat formatted with the model's chat template"
    $chat = Invoke-CkCompletion -System 'You are terse.' -Messages @{ Role = 'user'; Content = 'Say hello.' } -MaxTokens 24 -Temperature 0 -Stream
    Write-Host "Chat format used: $($chat.ChatFormat). The model saw:" 
    Write-Host $chat.Prompt -ForegroundColor DarkGray

    Write-Step 'Invoke-CkCompletion -JsonSchema -AsObject: output constrained to a JSON schema, returned as an object'
    $schema = @{ type = 'object'; properties = @{ mood = @{ enum = @('happy', 'calm', 'curious') }; score = @{ type = 'integer' } }; required = @('mood', 'score') }
    $object = Invoke-CkCompletion -Prompt 'Describe your mood as JSON:' -JsonSchema $schema -AsObject -MaxTokens 64 -Temperature 0.7 -Seed 3
    $object | Format-List | Out-Host
    Write-Host 'Even a random model produces valid JSON of the requested shape: the grammar only allows matching tokens.'

    $docs = Split-Path $PSScriptRoot -Parent
    $kb = Join-Path $work 'kb'
    Write-Step "Add-CkKnowledge: building a knowledge base from the repository's own docs ($docs)"
    $clock = [Diagnostics.Stopwatch]::StartNew()
    $ingested = @(Get-ChildItem -LiteralPath $docs -Recurse -File -Filter *.md | Add-CkKnowledge -KnowledgeBase $kb)
    Write-Host ("Stored {0} files as {1} chunks (split by the embedder's tokens, each with its file, heading and line range) in {2:N1} s, in {3}." -f
        $ingested.Count, ($ingested | Measure-Object Chunks -Sum).Sum, $clock.Elapsed.TotalSeconds, $kb)

    if ($generated) {
        # A full fine-tune of the whole docs/ would take tens of minutes on 2 cores; one page shows the mechanism.
        $page = Join-Path $docs 'cmdlets/Invoke-CkRag.md'
        Write-Step "Start-CkFineTune -Method Full: training the generated model on $page (ggml autodiff, in a worker process)"
        $tuned = Join-Path $work 'demo-tuned.gguf'
        $training = Start-CkFineTune -Model $Model -Path $page -OutputPath $tuned -Method Full -Epochs 6 -ContextLength 64 -Wait
        Write-Host ("Trained {0} steps in {1:N0} s at {2:N0} tokens/s; llama.cpp perplexity on that page {3:N1} -> {4:N1}. Wrote {5}." -f
            $training.Steps, $training.Duration.TotalSeconds, $training.TokensPerSecond, $training.PerplexityBefore, $training.PerplexityAfter, $training.ModelPath)
        Remove-CkModel -Name $loaded.Name
        $loaded = Import-CkModel -Path $tuned -ContextSize 2048 -Name 'demo-tuned'
        Write-Host "RAG below uses the fine-tuned model '$($loaded.Name)'. Six epochs on one page do not make a 5M-parameter model fluent."
    }

    $question = 'How does Invoke-CkRag keep the prompt inside the context window?'
    Write-Step "Search-CkKnowledge: the passages hybrid search (BM25 + vectors, fused by rank) finds for: $question"
    Search-CkKnowledge $question -KnowledgeBase $kb -Top 4 | Format-Table | Out-String -Width 160 | Out-Host

    Write-Step 'Invoke-CkRag -Stream: the same passages, numbered and delimited as data, fitted to the context window, then the answer as it is generated'
    if ($generated) {
        Write-Host 'The model is the Small model generated above, barely trained: its answer below is gibberish. Everything around it is real:' -ForegroundColor Yellow
        Write-Host 'retrieval, the numbered prompt, token budgeting with its own tokenizer, streaming, and citation checking. Use -Model <gguf> for a real answer.' -ForegroundColor Yellow
    }
    $answer = Invoke-CkRag $question -KnowledgeBase $kb -Top 4 -MaxTokens 48 -Temperature 0.7 -Seed 5 -Stream
    Write-Host ("`nPrompt {0} tokens (chat format: {1}; {2} of {3} passages included, {4} trimmed to fit {5} tokens), {6} generated at {7:N0} tokens/s; retrieval {8:N0} ms, generation {9:N0} ms." -f
        $answer.PromptTokens, $answer.ChatFormat, $answer.Citations.Count, $answer.PassagesRetrieved, $answer.PassagesTrimmed, $loaded.ContextSize,
        $answer.CompletionTokens, $answer.TokensPerSecond, $answer.RetrievalMs, $answer.GenerationMs)
    $excerpt = [regex]::Match($answer.Prompt, '(?s)Passages \(untrusted.*?END PASSAGE \[1\] \S+')
    if ($excerpt.Success) {
        Write-Host 'How the passages reach the model (the first one, delimited by a random boundary):'
        Write-Host $excerpt.Value -ForegroundColor DarkGray
    }
    Write-Host 'Citations (the numbered passages the model was given):'
    $answer.Citations | Format-Table | Out-String -Width 160 | Out-Host
    $cited = if ($answer.CitedNumbers.Count) { ($answer.CitedNumbers | ForEach-Object { "[$_]" }) -join ' ' } else { 'none' }
    $unknown = if ($answer.UnknownCitations.Count) { ($answer.UnknownCitations | ForEach-Object { "[$_]" }) -join ' ' } else { 'none' }
    Write-Host "Markers in the answer that name a passage: $cited. Markers that name no passage (made up): $unknown."
    foreach ($citation in $answer.CitedPassages) { Write-Host "  [$($citation.Number)] $($citation.Location)" }

    Write-Step 'Invoke-CkRag -MinScore: nothing relevant means the model is not asked at all'
    $none = Invoke-CkRag 'What is the boiling point of tungsten?' -KnowledgeBase $kb -Mode Vector -MinScore 0.6 -WarningAction SilentlyContinue
    Write-Host "NoKnowledge: $($none.NoKnowledge). Answer: $($none.Answer)"

    Write-Step 'Measure-CkRetrieval: hit@1, hit@3 and MRR@3 of each search mode on five questions about the docs'
    $pairs = @(
        @{ Question = 'Which cmdlet writes a random-weight GGUF model from a preset?'; ExpectedSource = 'New-CkModel.md' }
        @{ Question = 'How do I force a completion to follow a JSON schema?'; ExpectedSource = 'Invoke-CkCompletion.md' }
        @{ Question = 'How are passages fitted into the context window when answering with citations?'; ExpectedSource = 'Invoke-CkRag.md' }
        @{ Question = 'How do I drop sources whose files were deleted?'; ExpectedSource = 'Add-CkKnowledge.md|Sync-CkKnowledge.md' }
        @{ Question = 'What do hit@1 and mean reciprocal rank measure?'; ExpectedSource = 'Measure-CkRetrieval.md' }
    )
    $pairs | Measure-CkRetrieval -KnowledgeBase $kb -Top 3 | Format-Table | Out-Host

    Write-Step 'Remove-CkModel: unloading the model and freeing its native memory'
    Remove-CkModel -Name $loaded.Name
    Write-Host "Model disposed: $($loaded.IsDisposed). Models still loaded: $(@(Get-CkModel).Count)."
}
finally {
    # Close the demo's knowledge base (flushes and releases its files) before its folder is deleted.
    (Get-CkSession).OpenKnowledgeBases | Where-Object { $_.StartsWith($work) } | ForEach-Object { $null = (Get-CkSession).CloseKnowledgeBase($_) }
    Get-CkModel | Remove-CkModel -Confirm:$false
    Remove-Item $work -Recurse -Force -ErrorAction Ignore
    Write-Host "`nRemoved the temporary folder $work."
}
