BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Training.TestHelpers.ps1')
    $script:Dir = Join-Path ([IO.Path]::GetTempPath()) "ckllm-ftmetrics-$([guid]::NewGuid().ToString('N'))"
    New-Item -ItemType Directory $script:Dir | Out-Null
    $script:Model = New-TrainingTestModel (Join-Path $script:Dir 'tiny.gguf')
    $script:Facts = Join-Path $script:Dir 'facts.txt'
    Set-Content -LiteralPath $script:Facts -Value $script:TrainingFacts -NoNewline
}

AfterAll {
    Get-Job | Where-Object PSJobTypeName -eq 'CkFineTuneJob' | Remove-Job -Force
    Remove-Item $script:Dir -Recurse -Force -ErrorAction Ignore
}

Describe 'Start-CkFineTune metrics' {
    It 'writes every step to the .metrics.csv beside the output, draws the .loss.png, and the job carries the same numbers' {
        $out = Join-Path $script:Dir 'watched.gguf'
        $job = Start-CkFineTune -Model $script:Model -Path $script:Facts -OutputPath $out -Epochs 4 -ContextLength 32 -BatchSize 2 `
            -ValidationSplit 0.2 -SkipPerplexity
        $job | Wait-Job -Timeout 900 | Out-Null
        $job.State | Should -Be 'Completed'
        # Progress records show the live loss of every step (read before Receive-Job, which drains them).
        $steps = @($job.Progress | Where-Object StatusDescription -match '^step (\d+)/')
        $result = $job | Receive-Job
        $steps.Count | Should -BeGreaterOrEqual $result.Steps
        $steps[-1].StatusDescription | Should -Match ('loss {0:F3}' -f $result.History[-1].Loss)

        $result.MetricsPath | Should -Be "$out.metrics.csv"
        $rows = @(Import-Csv -LiteralPath $result.MetricsPath)
        $rows.Count | Should -Be $result.Steps
        $rows.Count | Should -BeGreaterThan 4
        $result.History.Count | Should -Be $rows.Count
        for ($i = 0; $i -lt $rows.Count; $i++) {
            [int] $rows[$i].step | Should -Be ($i + 1)
            [double] $rows[$i].train_loss | Should -BeGreaterThan 0
            [math]::Abs([double] $rows[$i].train_loss - $result.History[$i].Loss) | Should -BeLessThan 1e-4
            [math]::Abs([double] $rows[$i].learning_rate - $result.History[$i].LearningRate) | Should -BeLessThan 1e-7
            [double] $rows[$i].tokens_per_second | Should -BeGreaterThan 0
        }
        # Validation loss at the end of each of the 4 epochs, and the per-epoch list agrees with it.
        $validated = @($rows | Where-Object validation_loss -ne '')
        $validated.Count | Should -Be 4
        [math]::Abs([double] $validated[-1].validation_loss - $result.ValidationLoss[-1]) | Should -BeLessThan 1e-4

        # The PNG was drawn in the worker (ScottPlot + SkiaSharp's Linux native library).
        $result.LossPlotPath | Should -Be "$out.loss.png"
        $bytes = [IO.File]::ReadAllBytes($result.LossPlotPath)
        $bytes.Length | Should -BeGreaterThan 5000
        [BitConverter]::ToString($bytes, 0, 8) | Should -Be '89-50-4E-47-0D-0A-1A-0A'

        $job.LastProgress.Phase | Should -Be 'epoch'
        $job.LastProgress.Loss | Should -Be $result.TrainLoss[-1]
    }
}
