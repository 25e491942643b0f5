BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Training.TestHelpers.ps1')
    $script:Dir = Join-Path ([IO.Path]::GetTempPath()) "ckllm-ftsafe-$([guid]::NewGuid().ToString('N'))"
    New-Item -ItemType Directory $script:Dir | Out-Null
    $script:Model = New-TrainingTestModel (Join-Path $script:Dir 'tiny.gguf')
    $script:Facts = Join-Path $script:Dir 'facts.md'
    Set-Content -LiteralPath $script:Facts -Value $script:TrainingFacts -NoNewline
    $script:Binary = Join-Path $script:Dir 'picture.png'
    [IO.File]::WriteAllBytes($script:Binary, [byte[]](0x89, 0x50, 0x4E, 0x47, 0, 0, 0, 0x0D, 0x49, 0x48, 0x44, 0x52))
    $script:BaseBytes = [IO.File]::ReadAllBytes($script:Model)
    $script:Quick = @{ Epochs = 1; ContextLength = 32; SkipPerplexity = $true }
}

AfterAll {
    Get-Job | Where-Object PSJobTypeName -eq 'CkFineTuneJob' | Remove-Job -Force
    Remove-Item $script:Dir -Recurse -Force -ErrorAction Ignore
}

Describe 'Start-CkFineTune protects its inputs and outputs' {
    It 'refuses the base model as output before starting a worker, even with -Force' {
        $jobs = @(Get-Job).Count
        { Start-CkFineTune -Model $script:Model -Path $script:Facts -OutputPath $script:Model -Force @script:Quick -ErrorAction Stop } |
            Should -Throw -ErrorId 'CkFineTune.BadOutputPath,CkLlm.Commands.StartCkFineTuneCommand'
        @(Get-Job).Count | Should -Be $jobs
        [IO.File]::ReadAllBytes($script:Model) | Should -Be $script:BaseBytes
    }

    It 'refuses an existing output without -Force and replaces it with -Force' {
        $out = Join-Path $script:Dir 'existing.gguf'
        Set-Content -LiteralPath $out -Value 'precious' -NoNewline
        $record = $null
        try { Start-CkFineTune -Model $script:Model -Path $script:Facts -OutputPath $out @script:Quick -Wait -ErrorAction Stop } catch { $record = $_ }
        $record.FullyQualifiedErrorId | Should -Be 'CkFineTune.OutputExists,CkLlm.Commands.StartCkFineTuneCommand'
        $record.CategoryInfo.Category | Should -Be 'ResourceExists'
        $record.TargetObject | Should -Be $out
        Get-Content -Raw -LiteralPath $out | Should -Be 'precious'

        $result = Start-CkFineTune -Model $script:Model -Path $script:Facts -OutputPath $out @script:Quick -Force -Wait
        $result.AdapterPath | Should -Be $out
        [Text.Encoding]::ASCII.GetString([IO.File]::ReadAllBytes($out), 0, 4) | Should -Be 'GGUF'
    }

    It 'reports a binary file as an InvalidData error naming it and trains on the readable files' {
        $out = Join-Path $script:Dir 'mixed.gguf'
        $err = $null
        $result = Start-CkFineTune -Model $script:Model -Path $script:Binary, $script:Facts -OutputPath $out @script:Quick -Wait `
            -ErrorVariable err -ErrorAction SilentlyContinue
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -Be 'CkFineTune.UnreadableDocument,CkLlm.Commands.StartCkFineTuneCommand'
        $err[0].CategoryInfo.Category | Should -Be 'InvalidData'
        $err[0].TargetObject | Should -Be $script:Binary
        $result.AdapterPath | Should -Be $out
        # Only the Markdown document's tokens were trained (the PNG header would add garbage tokens).
        $tokens = (Measure-CkPerplexity -Model $script:Model -Text $script:TrainingFacts -ContextLength 33).TokenCount
        $result.TrainingTokens | Should -BeIn (($tokens - 2)..($tokens + 2))
    }

    It 'ends with NoData when every file is binary, before starting a worker' {
        $jobs = @(Get-Job).Count
        { Get-Item -LiteralPath $script:Binary | Start-CkFineTune -Model $script:Model -OutputPath (Join-Path $script:Dir 'none.gguf') -ErrorAction Stop } |
            Should -Throw -ErrorId 'CkFineTune.UnreadableDocument,CkLlm.Commands.StartCkFineTuneCommand'
        $record = $null
        try { Get-Item -LiteralPath $script:Binary | Start-CkFineTune -Model $script:Model -OutputPath (Join-Path $script:Dir 'none.gguf') -ErrorAction SilentlyContinue }
        catch { $record = $_ }
        $record.FullyQualifiedErrorId | Should -Be 'CkFineTune.NoData,CkLlm.Commands.StartCkFineTuneCommand'
        @(Get-Job).Count | Should -Be $jobs
    }

    It 'leaves no job spec behind: gone while the job runs and after it is stopped' {
        $out = Join-Path $script:Dir 'spec.gguf'
        $job = Start-CkFineTune -Model $script:Model -Path $script:Facts -OutputPath $out -Epochs 500 -ContextLength 32 -SkipPerplexity
        $spec = $job.JobSpecPath
        Split-Path -Leaf (Split-Path -Parent $spec) | Should -BeLike 'ckllm-finetune-*'
        $deadline = [DateTime]::UtcNow.AddSeconds(300)
        while (-not (Test-Path (Join-Path $job.CheckpointPath 'state.json')) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 250 }
        $job.State | Should -Be 'Running'
        # The worker read its spec and deleted it with its private directory.
        Test-Path -LiteralPath $spec | Should -BeFalse
        Test-Path -LiteralPath (Split-Path -Parent $spec) | Should -BeFalse
        $job | Stop-Job
        $job.State | Should -Be 'Stopped'
        Test-Path -LiteralPath (Split-Path -Parent $spec) | Should -BeFalse
    }
}
