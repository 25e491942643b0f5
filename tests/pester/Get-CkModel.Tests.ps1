BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Model.TestHelpers.ps1')
    Clear-CkTestModels
    $script:dir = New-CkTestModelFolder
    $null = Import-CkModel (Join-Path $dir 'tiny.gguf') -Name 'alpha' -ContextSize 256
    $null = Import-CkModel (Join-Path $dir 'tiny-chat.gguf') -Name 'beta' -ContextSize 256
}

AfterAll {
    Clear-CkTestModels
    Remove-Item $script:dir -Recurse -Force -ErrorAction Ignore
}

Describe 'Get-CkModel' {
    It 'lists every loaded model in load order' {
        (Get-CkModel).Name | Should -Be @('alpha', 'beta')
    }

    It 'filters by wildcard, case-insensitively' {
        (Get-CkModel 'AL*').Name | Should -Be 'alpha'
        Get-CkModel 'z*' | Should -BeNullOrEmpty
    }

    It 'returns the current model with -Current' {
        (Get-CkModel -Current).Name | Should -Be 'beta'
    }

    It 'reports an unknown exact name as ObjectNotFound' {
        Get-CkModel 'gamma' -ErrorAction SilentlyContinue -ErrorVariable problems | Should -BeNullOrEmpty
        $problems[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $problems[0].TargetObject | Should -Be 'gamma'
    }

    It 'formats models as a table with the model columns' {
        $text = Get-CkModel | Out-String
        $text | Should -Match 'Name\s+Kind\s+Architecture\s+Parameters'
        $text | Should -Match 'alpha\s+Local\s+llama'
    }
}
