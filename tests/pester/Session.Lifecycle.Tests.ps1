# The process-wide session across runspaces, and native work that must go through the validator and the log routing.
BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Model.TestHelpers.ps1')
    $script:dir = Join-Path ([IO.Path]::GetTempPath()) "ckllm-lifecycle-$([guid]::NewGuid().ToString('N'))"
    New-Item -ItemType Directory -Path $script:dir | Out-Null
    $script:tiny = Join-Path $script:dir 'tiny.gguf'
    $null = New-CkModel -Path $script:tiny -Seed 1
}

AfterAll {
    Clear-CkTestModels
    Remove-Item $script:dir -Recurse -Force -ErrorAction Ignore
}

Describe 'The session across runspaces' {
    It 'keeps the session (and its models) when another runspace removes the module' {
        $model = Import-CkModel $script:tiny -Name 'kept' -ContextSize 256
        $created = (Get-CkSession).Created
        $other = [powershell]::Create()
        try {
            $null = $other.AddScript("Import-Module '$env:CKLLM_MODULE'; `$null = Get-CkSession; Remove-Module CkLlm").Invoke()
            $other.HadErrors | Should -BeFalse -Because ($other.Streams.Error -join "`n")
        }
        finally { $other.Dispose() }
        (Get-CkSession).Created | Should -Be $created
        $model.IsDisposed | Should -BeFalse
        (Invoke-CkCompletion 'Hello' -Model 'kept' -MaxTokens 2 -Temperature 0).CompletionTokens | Should -Be 2
    }

    It 'frees the session when the last runspace removes the module' {
        $run = Invoke-CkChildPwsh @"
`$ErrorActionPreference = 'Stop'
Import-Module '$env:CKLLM_MODULE'
`$model = Import-CkModel '$script:tiny' -ContextSize 256
Remove-Module CkLlm
'DISPOSED=' + `$model.IsDisposed
"@
        $text = $run.Output -join "`n"
        $run.ExitCode | Should -Be 0 -Because $text
        $text | Should -Match 'DISPOSED=True'
    }
}

Describe 'Measure-CkPerplexity and llama.cpp' {
    It 'routes the native log to Verbose instead of stderr, also as the first native call of the process' {
        $run = Invoke-CkChildPwsh @"
`$ErrorActionPreference = 'Stop'
Import-Module '$env:CKLLM_MODULE'
`$result = Measure-CkPerplexity -Model '$script:tiny' -Text 'the cat sat on the mat and the dog sat on the log' -Verbose 4>&1
'VERBOSE=' + @(`$result | Where-Object { `$_ -is [System.Management.Automation.VerboseRecord] -and `$_.Message -like 'llama.cpp*' }).Count
'PERPLEXITY=' + @(`$result | Where-Object { `$_ -isnot [System.Management.Automation.VerboseRecord] })[0].Perplexity
"@
        $text = $run.Output -join "`n"
        $run.ExitCode | Should -Be 0 -Because $text
        $text | Should -Match 'PERPLEXITY=\d'
        $text | Should -Not -Match 'llama_model_load|load_tensors|print_info'
        $text | Should -Match 'VERBOSE=[1-9]'
    }

    It 'refuses a file the managed validator rejects, with the same error id as Import-CkModel' {
        $bad = Join-Path $script:dir 'truncated.gguf'
        $bytes = [IO.File]::ReadAllBytes($script:tiny)
        [IO.File]::WriteAllBytes($bad, $bytes[0..([int]($bytes.Length / 2))])
        $perplexityError = $null
        try { Measure-CkPerplexity -Model $bad -Text 'x y z' -ErrorAction Stop } catch { $perplexityError = $_ }
        Import-CkModel $bad -ErrorAction SilentlyContinue -ErrorVariable importErrors
        $perplexityError.FullyQualifiedErrorId | Should -BeLike 'InvalidModelFile,*'
        $importErrors[0].FullyQualifiedErrorId | Should -BeLike 'InvalidModelFile,*'
    }
}
