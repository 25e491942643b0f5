BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Model.TestHelpers.ps1')
    Clear-CkTestModels
    $script:dir = New-CkTestModelFolder
    $script:tiny = Join-Path $dir 'tiny.gguf'
}

AfterAll {
    Clear-CkTestModels
    Remove-Item $script:dir -Recurse -Force -ErrorAction Ignore
}

Describe 'Remove-CkModel' {
    AfterEach { Clear-CkTestModels }

    It 'removes by name, frees the native model and moves the current model' {
        $first = Import-CkModel $tiny -Name 'first' -ContextSize 256
        $second = Import-CkModel $tiny -Name 'second' -ContextSize 256
        Remove-CkModel 'second'
        $second.IsDisposed | Should -BeTrue
        $first.IsDisposed | Should -BeFalse
        (Get-CkModel).Name | Should -Be 'first'
        (Get-CkSession).CurrentModel.Name | Should -Be 'first'
    }

    It 'removes models piped from Get-CkModel and from Import-CkModel' {
        $a = Import-CkModel $tiny -Name 'a' -ContextSize 256
        $null = Import-CkModel $tiny -Name 'b' -ContextSize 256
        $a | Remove-CkModel
        $a.IsDisposed | Should -BeTrue
        Get-CkModel | Remove-CkModel
        Get-CkModel | Should -BeNullOrEmpty
        (Get-CkSession).CurrentModel | Should -BeNullOrEmpty
    }

    It 'frees native memory: llama.cpp unmaps the model file' {
        $small = Join-Path $dir 'small.gguf'
        $null = New-CkModel -Path $small -Preset Small -Seed 1 -Force
        $model = Import-CkModel $small -ContextSize 256
        $null = Invoke-CkCompletion 'warm up' -MaxTokens 2 -Temperature 0
        $maps = Get-Content "/proc/$PID/maps" -Raw
        $maps | Should -Match ([regex]::Escape($small))
        Remove-CkModel -Name $model.Name
        $model.IsDisposed | Should -BeTrue
        Get-Content "/proc/$PID/maps" -Raw | Should -Not -Match ([regex]::Escape($small))
    }

    It 'keeps the model with -WhatIf' {
        $model = Import-CkModel $tiny -ContextSize 256
        Remove-CkModel $model.Name -WhatIf
        $model.IsDisposed | Should -BeFalse
        (Get-CkModel).Name | Should -Be $model.Name
    }

    It 'reports an unknown name as ObjectNotFound' {
        Remove-CkModel 'nothing' -ErrorAction SilentlyContinue -ErrorVariable problems
        $problems[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $problems[0].TargetObject | Should -Be 'nothing'
    }
}
