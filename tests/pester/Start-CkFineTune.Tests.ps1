BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Training.TestHelpers.ps1')
    $script:Dir = Join-Path ([IO.Path]::GetTempPath()) "ckllm-ft-$([guid]::NewGuid().ToString('N'))"
    New-Item -ItemType Directory $script:Dir | Out-Null
    $script:Model = New-TrainingTestModel (Join-Path $script:Dir 'tiny.gguf')
    $script:Facts = Join-Path $script:Dir 'facts.txt'
    Set-Content -LiteralPath $script:Facts -Value $script:TrainingFacts -NoNewline
    $script:BaseBytes = [IO.File]::ReadAllBytes($script:Model)

    function Wait-Checkpoint([string] $CheckpointPath, [int] $Seconds = 300) {
        $deadline = [DateTime]::UtcNow.AddSeconds($Seconds)
        while (-not (Test-Path (Join-Path $CheckpointPath 'state.json')) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 250 }
        Test-Path (Join-Path $CheckpointPath 'state.json')
    }
}

AfterAll {
    Get-Job | Where-Object PSJobTypeName -eq 'CkFineTuneJob' | Remove-Job -Force
    Remove-Item $script:Dir -Recurse -Force -ErrorAction Ignore
}

Describe 'Start-CkFineTune' {
    It 'full fine-tune with -Wait cuts llama.cpp perplexity at least 5x and never touches the base model' {
        $out = Join-Path $script:Dir 'full.gguf'
        $result = Start-CkFineTune -Model $script:Model -Path $script:Facts -OutputPath $out -Method Full `
            -Epochs 15 -ContextLength 32 -BatchSize 1 -LearningRate 0.003 -Wait
        $result.ModelPath | Should -Be $out
        $result.TrainLoss.Count | Should -Be 15
        ($result.PerplexityAfter * 5) | Should -BeLessOrEqual $result.PerplexityBefore
        # Independent check through the perplexity cmdlet (llama.cpp loads the written model).
        $after = Measure-CkPerplexity -Model $out -Path $script:Facts -ContextLength 33
        $before = Measure-CkPerplexity -Model $script:Model -Path $script:Facts -ContextLength 33
        ($after.Perplexity * 5) | Should -BeLessOrEqual $before.Perplexity
        [IO.File]::ReadAllBytes($script:Model) | Should -Be $script:BaseBytes
    }

    It 'runs LoRA as a job: Wait-Job, Receive-Job and an adapter that llama.cpp applies' {
        $out = Join-Path $script:Dir 'lora.gguf'
        $job = Start-CkFineTune -Model $script:Model -Path $script:Facts -OutputPath $out -Epochs 25 -ContextLength 32 `
            -BatchSize 1 -LearningRate 0.003 -Rank 16 -Alpha 16 -LoraTarget attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down, output
        $job.PSJobTypeName | Should -Be 'CkFineTuneJob'
        (Get-Job -Id $job.Id).InstanceId | Should -Be $job.InstanceId
        $job | Wait-Job -Timeout 900 | Out-Null
        $job.State | Should -Be 'Completed'
        $result = $job | Receive-Job
        $result.AdapterPath | Should -Be $out
        $result.Method.ToString() | Should -Be 'Lora'
        $withAdapter = Measure-CkPerplexity -Model $script:Model -Adapter $out -Path $script:Facts -ContextLength 33
        $base = Measure-CkPerplexity -Model $script:Model -Path $script:Facts -ContextLength 33
        ($withAdapter.Perplexity * 5) | Should -BeLessOrEqual $base.Perplexity
    }

    It 'Stop-Job keeps the checkpoint and -Resume continues from it' {
        $out = Join-Path $script:Dir 'resume.gguf'
        $common = @{ Model = $script:Model; Path = $script:Facts; OutputPath = $out; ContextLength = 32; BatchSize = 2; SkipPerplexity = $true }
        $job = Start-CkFineTune @common -Epochs 500
        Wait-Checkpoint $job.CheckpointPath | Should -BeTrue
        $job | Stop-Job
        $job.State | Should -Be 'Stopped'
        Test-Path $out | Should -BeFalse
        $state = Get-Content -Raw (Join-Path $job.CheckpointPath 'state.json') | ConvertFrom-Json
        $state.EpochsCompleted | Should -BeGreaterOrEqual 1

        $resumed = Start-CkFineTune @common -Epochs ($state.EpochsCompleted + 1) -Resume -Wait
        $resumed.Epochs | Should -Be ($state.EpochsCompleted + 1)
        $resumed.TrainLoss.Count | Should -Be ($state.EpochsCompleted + 1)
        Test-Path $out | Should -BeTrue
    }

    It 'kill -9 of the worker fails the job but leaves the shell and the checkpoint intact' {
        $out = Join-Path $script:Dir 'killed.gguf'
        $common = @{ Model = $script:Model; Path = $script:Facts; OutputPath = $out; ContextLength = 32; BatchSize = 2; SkipPerplexity = $true }
        $job = Start-CkFineTune @common -Epochs 500
        Wait-Checkpoint $job.CheckpointPath | Should -BeTrue
        & kill -9 $job.ProcessId
        $job | Wait-Job -Timeout 60 | Out-Null
        $job.State | Should -Be 'Failed'
        $job.ChildJobs.Count | Should -Be 0
        $failure = { $job | Receive-Job -ErrorAction Stop } | Should -Throw -ErrorId 'CkFineTune.Failed' -PassThru
        $failure.CategoryInfo.Category | Should -Be 'OperationStopped'
        $failure.TargetObject | Should -Be $script:Model
        $state = Get-Content -Raw (Join-Path $job.CheckpointPath 'state.json') | ConvertFrom-Json
        $resumed = Start-CkFineTune @common -Epochs ($state.EpochsCompleted + 1) -Resume -Wait
        $resumed.Epochs | Should -Be ($state.EpochsCompleted + 1)
    }

    It 'reports bad input as errors with a category' {
        $record = $null
        try { Start-CkFineTune -Model (Join-Path $script:Dir 'missing.gguf') -Text 'hello' -OutputPath (Join-Path $script:Dir 'x.gguf') -ErrorAction Stop } catch { $record = $_ }
        $record.CategoryInfo.Category | Should -Be 'ObjectNotFound'

        $record = $null
        try { Start-CkFineTune -Model $script:Model -Text 'hello world' -OutputPath (Join-Path $script:Dir 'y.gguf') -Method Full -Merge -Wait -ErrorAction Stop } catch { $record = $_ }
        $record.FullyQualifiedErrorId | Should -Be 'CkFineTune.InvalidOptions,CkLlm.Commands.StartCkFineTuneCommand'
        $record.CategoryInfo.Category | Should -Be 'InvalidArgument'
    }

    It 'trains on a knowledge base that the session has open (-KnowledgeBase)' {
        $kb = Join-Path $script:Dir 'kb'
        # The tiny model embeds (no MiniLM load); small overlapping chunks must come back as one document.
        Add-CkKnowledge -Text $script:TrainingFacts -Source facts -KnowledgeBase $kb -EmbeddingModel $script:Model -ChunkSize 24 -ChunkOverlap 6 | Out-Null
        $out = Join-Path $script:Dir 'kb-full.gguf'
        $result = Start-CkFineTune -Model $script:Model -KnowledgeBase $kb -OutputPath $out -Method Full `
            -Epochs 3 -ContextLength 32 -BatchSize 1 -LearningRate 0.003 -Wait
        $result.ModelPath | Should -Be $out
        $result.TrainLoss.Count | Should -Be 3
        $result.TrainLoss[-1] | Should -BeLessThan $result.TrainLoss[0]
        $result.PerplexityAfter | Should -BeLessThan $result.PerplexityBefore
        # Every fact token was trained once per epoch: the overlap was removed, nothing lost or repeated.
        $tokens = (Measure-CkPerplexity -Model $script:Model -Text $script:TrainingFacts -ContextLength 33).TokenCount
        $result.TrainingTokens | Should -BeIn (($tokens - 2)..($tokens + 2))
        # The knowledge base still works for the session afterwards.
        (Search-CkKnowledge 'lighthouse' -KnowledgeBase $kb -Mode Keyword | Select-Object -First 1).Source | Should -Be 'facts'
    }

    It 'reports a missing or empty knowledge base with its path' {
        $missing = Join-Path $script:Dir 'no-kb'
        $record = $null
        try { Start-CkFineTune -Model $script:Model -KnowledgeBase $missing -OutputPath (Join-Path $script:Dir 'm.gguf') -ErrorAction Stop } catch { $record = $_ }
        $record.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $record.TargetObject | Should -Be $missing
        Test-Path $missing | Should -BeFalse

        $empty = Join-Path $script:Dir 'empty-kb'
        Add-CkKnowledge -Text 'soon gone' -Source gone -KnowledgeBase $empty -EmbeddingModel $script:Model | Out-Null
        Remove-CkKnowledge -Source gone -KnowledgeBase $empty
        $record = $null
        try { Start-CkFineTune -Model $script:Model -KnowledgeBase $empty -OutputPath (Join-Path $script:Dir 'e.gguf') -ErrorAction Stop } catch { $record = $_ }
        $record.CategoryInfo.Category | Should -Be 'InvalidData'
        $record.TargetObject | Should -Be $empty
        $record.Exception.Message | Should -BeLike '*no sources*'
    }

    It 'trains prompt/response records from the pipeline; a record without a response is an error that loses nothing else' {
        $records = @(
            [pscustomobject]@{ Prompt = 'Who built the lighthouse of Varnholm?'; Response = 'Edda Quill, in 1743.' }
            [pscustomobject]@{ Prompt = 'What does Tobin Marsh bake?'; Response = 'The storm loaf, every Thursday.' }
            @{ Prompt = 'How long is the gravel path?'; Response = 'One thousand two hundred steps.' }
            [pscustomobject]@{ Prompt = 'Who counts the goats?' }
        )
        $out = Join-Path $script:Dir 'pairs.gguf'
        $err = $null
        $result = $records | Start-CkFineTune -Model $script:Model -OutputPath $out -Method Full -Epochs 12 -ContextLength 64 `
            -BatchSize 1 -LearningRate 0.003 -Schedule Constant -Wait -ErrorVariable err -ErrorAction SilentlyContinue
        $err.Count | Should -Be 1
        $err[0].CategoryInfo.Category | Should -Be 'InvalidData'
        $err[0].TargetObject.Prompt | Should -Be 'Who counts the goats?'
        $result.ModelPath | Should -Be $out
        $result.TrainLoss.Count | Should -Be 12
        ($result.TrainLoss[-1] * 3) | Should -BeLessThan $result.TrainLoss[0]
        # Documents are what perplexity is measured on; records alone have none.
        $result.PerplexityBefore | Should -BeNullOrEmpty
    }

    It 'takes files from Get-ChildItem on the pipeline as documents' {
        $out = Join-Path $script:Dir 'piped.gguf'
        $result = Get-Item -LiteralPath $script:Facts | Start-CkFineTune -Model $script:Model -OutputPath $out -Epochs 1 -ContextLength 32 -SkipPerplexity -Wait
        $result.AdapterPath | Should -Be $out
        $result.TrainingTokens | Should -BeGreaterThan 300
    }

    It 'supports -WhatIf without starting anything' {
        $out = Join-Path $script:Dir 'whatif.gguf'
        Start-CkFineTune -Model $script:Model -Path $script:Facts -OutputPath $out -WhatIf | Should -BeNullOrEmpty
        Test-Path "$out.checkpoint" | Should -BeFalse
    }
}
