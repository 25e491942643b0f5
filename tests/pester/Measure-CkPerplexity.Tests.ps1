BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Training.TestHelpers.ps1')
    $script:Dir = Join-Path ([IO.Path]::GetTempPath()) "ckllm-ppl-$([guid]::NewGuid().ToString('N'))"
    New-Item -ItemType Directory $script:Dir | Out-Null
    $script:Model = New-TrainingTestModel (Join-Path $script:Dir 'tiny.gguf')
}

AfterAll { Remove-Item $script:Dir -Recurse -Force -ErrorAction Ignore }

Describe 'Measure-CkPerplexity' {
    It 'measures an untrained model near its vocabulary size' {
        $result = Measure-CkPerplexity -Model $script:Model -Text $script:TrainingFacts
        $result.GetType().FullName | Should -Be 'CkLlm.Engine.Training.PerplexityResult'
        $result.TokenCount | Should -BeGreaterThan 100
        # A random model predicts nearly uniformly over its 512 tokens.
        $result.Perplexity | Should -BeGreaterThan 300
        $result.Perplexity | Should -BeLessThan 800
    }

    It 'reads files with -Path and gives the same number as -Text' {
        $file = Join-Path $script:Dir 'facts.txt'
        Set-Content -LiteralPath $file -Value $script:TrainingFacts -NoNewline
        $fromFile = Measure-CkPerplexity -Model $script:Model -Path $file
        $fromText = Measure-CkPerplexity -Model $script:Model -Text $script:TrainingFacts
        $fromFile.Perplexity | Should -Be $fromText.Perplexity
    }

    It 'reports a missing model as ObjectNotFound' {
        $record = $null
        try { Measure-CkPerplexity -Model (Join-Path $script:Dir 'missing.gguf') -Text 'x y z' -ErrorAction Stop } catch { $record = $_ }
        $record.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $record.FullyQualifiedErrorId | Should -BeLike 'CkPerplexity.ModelNotFound*'
    }

    It 'rejects a file that is not GGUF without crashing the shell' {
        $garbage = Join-Path $script:Dir 'garbage.gguf'
        [IO.File]::WriteAllBytes($garbage, [byte[]]::new(4096))
        $record = { Measure-CkPerplexity -Model $garbage -Text 'x y z' -ErrorAction Stop } |
            Should -Throw -ErrorId 'InvalidModelFile,CkLlm.Commands.MeasureCkPerplexityCommand' -PassThru
        $record.CategoryInfo.Category | Should -Be 'InvalidData'
        $record.TargetObject | Should -Be $garbage
        $record.Exception.Message | Should -BeLike "*garbage.gguf*"
        # Same process afterwards: the shell and the engine still work.
        (Measure-CkPerplexity -Model $script:Model -Text $script:TrainingFacts).TokenCount | Should -BeGreaterThan 100
    }
}
