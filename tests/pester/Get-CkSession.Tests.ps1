BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
}

Describe 'Get-CkSession' {
    It 'returns the process-wide session object' {
        $session = Get-CkSession
        $session | Should -Not -BeNullOrEmpty
        $session.GetType().FullName | Should -Be 'CkLlm.Engine.Session.CkSession'
        (Get-CkSession).Created | Should -Be $session.Created
    }
}
