BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
}

Describe 'Get-CkSession' {
    It 'returns the process-wide session object' {
        $session = Get-CkSession
        $session.GetType().FullName | Should -Be 'CkLlm.Engine.Session.CkSession'
        (Get-CkSession).Created | Should -Be $session.Created
    }

    It 'shows the loaded models and the current model' {
        $dir = Join-Path ([IO.Path]::GetTempPath()) "ckllm-session-$([guid]::NewGuid().ToString('N'))"
        New-Item -ItemType Directory -Path $dir | Out-Null
        try {
            $path = Join-Path $dir 'session.gguf'
            $null = New-CkModel -Path $path -Seed 1
            $first = Import-CkModel $path -Name 'session-a' -ContextSize 256
            $second = Import-CkModel $path -Name 'session-b' -ContextSize 256
            $session = Get-CkSession
            $session.Models.Name | Should -Contain 'session-a'
            $session.Models.Name | Should -Contain 'session-b'
            $session.CurrentModel | Should -Be $second
            $first, $second | Remove-CkModel
            @((Get-CkSession).Models | ForEach-Object Name) | Should -Not -Contain 'session-a'
            $first.IsDisposed | Should -BeTrue
        }
        finally { Remove-Item $dir -Recurse -Force -ErrorAction Ignore }
    }
}
