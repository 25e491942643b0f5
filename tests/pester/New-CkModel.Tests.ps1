BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    $script:dir = Join-Path ([IO.Path]::GetTempPath()) "ckllm-newmodel-$([guid]::NewGuid().ToString('N'))"
    New-Item -ItemType Directory -Path $script:dir | Out-Null
}

AfterAll {
    Remove-Item $script:dir -Recurse -Force -ErrorAction Ignore
}

Describe 'New-CkModel' {
    It 'writes a Tiny model and returns its summary' {
        $path = Join-Path $script:dir 'tiny.gguf'
        $summary = New-CkModel -Path $path -Seed 1
        $summary.GetType().FullName | Should -Be 'CkLlm.Engine.Model.Gguf.GgufModelSummary'
        $summary.Path | Should -Be $path
        $summary.Architecture | Should -Be 'llama'
        $summary.Name | Should -Be 'tiny'
        $summary.ParameterCount | Should -BeGreaterThan 100000
        $summary.ContextLength | Should -Be 512
        $summary.VocabularySize | Should -Be 512
        $summary.FileSize | Should -Be (Get-Item $path).Length
        $summary.HasChatTemplate | Should -BeFalse
    }

    It 'resolves PowerShell-relative paths against the current location' {
        Push-Location $script:dir
        try {
            $summary = New-CkModel -Path './relative.gguf' -Name 'rel'
            $summary.Path | Should -Be (Join-Path $script:dir 'relative.gguf')
            $summary.Name | Should -Be 'rel'
        }
        finally { Pop-Location }
    }

    It 'writes nothing with -WhatIf' {
        $path = Join-Path $script:dir 'whatif.gguf'
        $result = New-CkModel -Path $path -WhatIf
        $result | Should -BeNullOrEmpty
        Test-Path $path | Should -BeFalse
    }

    It 'refuses to overwrite without -Force and overwrites with it' {
        $path = Join-Path $script:dir 'exists.gguf'
        New-CkModel -Path $path -Seed 1 | Out-Null
        $before = (Get-FileHash $path).Hash
        $err = $null
        New-CkModel -Path $path -Seed 2 -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].CategoryInfo.Category | Should -Be 'ResourceExists'
        $err[0].TargetObject | Should -Be $path
        (Get-FileHash $path).Hash | Should -Be $before
        (New-CkModel -Path $path -Seed 2 -Force).Path | Should -Be $path
        (Get-FileHash $path).Hash | Should -Not -Be $before
    }

    It 'is deterministic for a seed' {
        $a = Join-Path $script:dir 'seed-a.gguf'; $b = Join-Path $script:dir 'seed-b.gguf'; $c = Join-Path $script:dir 'seed-c.gguf'
        New-CkModel $a -Seed 7 -Name same | Out-Null
        New-CkModel $b -Seed 7 -Name same | Out-Null
        New-CkModel $c -Seed 8 -Name same | Out-Null
        (Get-FileHash $a).Hash | Should -Be (Get-FileHash $b).Hash
        (Get-FileHash $c).Hash | Should -Not -Be (Get-FileHash $a).Hash
    }

    It 'learns a different vocabulary from a corpus' {
        $corpus = Join-Path $script:dir 'corpus.txt'
        Set-Content $corpus ('zyxwv quartzite zyxwv quartzite ' * 50)
        $default = Join-Path $script:dir 'default.gguf'; $learned = Join-Path $script:dir 'learned.gguf'
        New-CkModel $default -Seed 1 -Name v | Out-Null
        New-CkModel $learned -Seed 1 -Name v -Corpus $corpus | Out-Null
        (Get-FileHash $learned).Hash | Should -Not -Be (Get-FileHash $default).Hash
        # The corpus word is a single piece in the learned vocabulary only.
        $bytes = [IO.File]::ReadAllBytes($learned)
        [Text.Encoding]::UTF8.GetString($bytes) | Should -Match ([regex]::Escape("$([char]0x2581)quartzite"))
        [Text.Encoding]::UTF8.GetString([IO.File]::ReadAllBytes($default)) | Should -Not -Match 'quartzite'
    }

    It 'reports a missing corpus file as ObjectNotFound and writes nothing' {
        $path = Join-Path $script:dir 'nocorpus.gguf'
        $missing = Join-Path $script:dir 'missing.txt'
        $err = $null
        New-CkModel $path -Corpus $missing -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $err[0].TargetObject | Should -Be $missing
        Test-Path $path | Should -BeFalse
    }

    It 'embeds a chat template, and ChatML as a shorthand' {
        $custom = New-CkModel (Join-Path $script:dir 'custom.gguf') -ChatTemplate '{{ messages }}'
        $custom.ChatTemplate | Should -Be '{{ messages }}'
        $chatml = New-CkModel (Join-Path $script:dir 'chatml.gguf') -ChatTemplate ChatML
        $chatml.HasChatTemplate | Should -BeTrue
        $chatml.ChatTemplate | Should -Match '<\|im_start\|>'
    }

    It 'rejects an unknown preset' {
        { New-CkModel (Join-Path $script:dir 'bad.gguf') -Preset Huge } | Should -Throw -ErrorId 'ParameterArgumentValidationError,CkLlm.Commands.NewCkModelCommand'
    }

    It 'shows the summary as a table' {
        $text = New-CkModel (Join-Path $script:dir 'table.gguf') | Format-Table | Out-String
        $text | Should -Match 'Architecture'
        $text | Should -Match 'Vocabulary'
        $text | Should -Match 'llama'
    }
}
