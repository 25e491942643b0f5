# Every exported cmdlet must have complete help: synopsis, description, every parameter described, an example.
BeforeDiscovery {
    Import-Module $env:CKLLM_MODULE -Force
    $script:cmdlets = Get-Command -Module CkLlm -CommandType Cmdlet | ForEach-Object { @{ Name = $_.Name } }
}

BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    $script:commonParameters = [System.Management.Automation.Internal.CommonParameters].GetProperties().Name +
        [System.Management.Automation.Internal.ShouldProcessParameters].GetProperties().Name
}

Describe 'Help for <Name>' -ForEach $cmdlets {
    BeforeAll {
        $script:help = Get-Help $Name -Full
        $script:command = Get-Command $Name
    }

    It 'has a synopsis written by hand' {
        $help.Synopsis | Should -Not -BeNullOrEmpty
        # Without a help file PowerShell fills the synopsis with the syntax.
        $help.Synopsis | Should -Not -Match ([regex]::Escape($Name) + '\s+\[')
    }

    It 'has a description' {
        ($help.Description.Text -join '') | Should -Not -BeNullOrEmpty
    }

    It 'has at least one example with code' {
        @($help.Examples.Example).Count | Should -BeGreaterOrEqual 1
        @($help.Examples.Example)[0].Code | Should -Not -BeNullOrEmpty
    }

    It 'describes every parameter' {
        $names = $command.Parameters.Keys | Where-Object { $_ -notin $commonParameters }
        foreach ($parameterName in $names) {
            $parameterHelp = $help.Parameters.Parameter | Where-Object Name -EQ $parameterName
            ($parameterHelp.Description.Text -join '') | Should -Not -BeNullOrEmpty -Because "-$parameterName of $Name needs a description"
        }
    }
}

Describe 'Help coverage' {
    It 'finds exported cmdlets to check' {
        $cmdlets.Count | Should -BeGreaterThan 0
    }
}
