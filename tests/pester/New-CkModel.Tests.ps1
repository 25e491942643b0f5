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

    Context 'with -Quantization' {
        BeforeAll {
            # The project's own GGUF reader, from the engine's load context.
            $script:ggufReader = (Get-CkSession).GetType().Assembly.GetType('CkLlm.Engine.Model.Gguf.GgufReader')
        }

        AfterEach { Get-CkModel | Remove-CkModel -Confirm:$false }

        It 'writes a Small model in <Quantization> that imports and completes' -ForEach @(
            @{ Quantization = 'Q8_0'; MatrixTypes = @('Q8_0') }
            # llama.cpp's Q4_K_M mix keeps the output matrix and some attn_v/ffn_down in Q6_K.
            @{ Quantization = 'q4_k_m'; MatrixTypes = @('Q4_K', 'Q6_K') }
            @{ Quantization = 'F16'; MatrixTypes = @('F16') }
        ) {
            $path = Join-Path $script:dir "small-$Quantization.gguf"
            $summary = New-CkModel $path -Preset Small -Seed 1 -ChatTemplate ChatML -Quantization $Quantization
            $summary.Path | Should -Be $path
            Get-ChildItem $script:dir -Filter "small-$Quantization.gguf*" | Should -HaveCount 1

            $tensors = $script:ggufReader::Read($path).Tensors
            $matrices = @($tensors | Where-Object { $_.Shape.Count -eq 2 })
            $matrices.Count | Should -BeGreaterThan 20
            @($matrices | Where-Object { "$($_.Type)" -notin $MatrixTypes }) | Should -BeNullOrEmpty
            @($matrices | Where-Object { "$($_.Type)" -eq $MatrixTypes[0] }).Count | Should -BeGreaterThan ($matrices.Count / 2)
            @($tensors | Where-Object { $_.Shape.Count -eq 1 -and "$($_.Type)" -ne 'F32' }) | Should -BeNullOrEmpty

            $model = Import-CkModel $path -ContextSize 256
            $model.ParameterCount | Should -Be $summary.ParameterCount
            $result = Invoke-CkCompletion 'Once upon a time' -Model $model -MaxTokens 4 -Temperature 0
            $result.CompletionTokens | Should -BeGreaterThan 0
        }

        It 'rejects <Name> as UnknownQuantization and writes nothing' -ForEach @(
            @{ Name = 'Q4_K' }, @{ Name = 'IQ2_XXS' }, @{ Name = 'BF16' }, @{ Name = 'Q9_9' }
        ) {
            $path = Join-Path $script:dir "bad-$Name.gguf"
            $err = $null
            New-CkModel $path -Quantization $Name -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            $err[0].FullyQualifiedErrorId | Should -Be 'UnknownQuantization,CkLlm.Commands.NewCkModelCommand'
            $err[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
            $err[0].TargetObject | Should -Be $Name
            $err[0].Exception.Message | Should -Match 'Q4_K_M'
            Test-Path $path | Should -BeFalse
        }

        It 'completes the accepted names' {
            $line = 'New-CkModel ./x.gguf -Quantization q4_k'
            $completions = (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText
            $completions | Should -Be @('Q4_K_M', 'Q4_K_S')
        }
    }

    It 'shows the summary as a table' {
        $text = New-CkModel (Join-Path $script:dir 'table.gguf') | Format-Table | Out-String
        $text | Should -Match 'Architecture'
        $text | Should -Match 'Vocabulary'
        $text | Should -Match 'llama'
    }
}
