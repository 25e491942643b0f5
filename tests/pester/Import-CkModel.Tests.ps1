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

Describe 'Import-CkModel' {
    AfterEach { Clear-CkTestModels }

    It 'loads a model, returns its description and makes it current' {
        $model = Import-CkModel $tiny -ContextSize 256 -Threads 1
        $model.GetType().FullName | Should -Be 'CkLlm.Engine.Model.LoadedModel'
        $model.Name | Should -Be 'tiny'
        $model.Path | Should -Be $tiny
        $model.Architecture | Should -Be 'llama'
        $model.ParameterCount | Should -BeGreaterThan 100000
        $model.ContextLength | Should -Be 512
        $model.VocabularySize | Should -Be 512
        $model.FileSize | Should -Be (Get-Item $tiny).Length
        $model.HasChatTemplate | Should -BeFalse
        $model.LoadTime | Should -BeGreaterThan ([timespan]::Zero)
        $model.Threads | Should -Be 1
        (Get-CkSession).CurrentModel | Should -Be $model
    }

    It 'takes files from Get-ChildItem and keeps several models loaded' {
        $models = Get-ChildItem $dir -Filter '*.gguf' | Import-CkModel -ContextSize 256
        $models.Count | Should -Be 2
        (Get-CkModel).Name | Should -Be $models.Name
        ($models.Name | Sort-Object) | Should -Be @('tiny', 'tiny-chat')
        (Get-CkModel -Name 'tiny-chat').HasChatTemplate | Should -BeTrue
        (Get-CkSession).CurrentModel | Should -Be $models[-1]
    }

    It 'resolves wildcards and relative paths, and honours -Name' {
        Push-Location $dir
        try {
            (Import-CkModel './tiny-c*.gguf').Name | Should -Be 'tiny-chat'
            (Import-CkModel -LiteralPath './tiny.gguf' -Name 'renamed').Name | Should -Be 'renamed'
        }
        finally { Pop-Location }
        (Get-CkModel).Name | Should -Be @('tiny-chat', 'renamed')
    }

    It 'writes llama.cpp''s log to the verbose stream, not to stderr' {
        $verbose = Import-CkModel $tiny -ContextSize 256 -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }
        ($verbose.Message -join "`n") | Should -Match 'llama\.cpp'
    }

    It 'applies LoRA adapters given with -Adapter and rejects a model file given as an adapter' {
        # A LoRA adapter in llama.cpp's format, written with the engine's GGUF writer: ffn_down deltas on every block.
        $engine = (Get-CkSession).GetType().Assembly
        $writer = [Activator]::CreateInstance($engine.GetType('CkLlm.Engine.Model.Gguf.GgufWriter'))
        $null = $writer.Add('general.architecture', 'llama').Add('general.type', 'adapter').Add('adapter.type', 'lora').Add('adapter.lora.alpha', [float]0)
        $f32 = [Enum]::ToObject($engine.GetType('CkLlm.Engine.Model.Gguf.GgmlType'), 0)
        $random = [Random]::new(5)
        $floats = { param($count) [byte[]]([float[]](1..$count | ForEach-Object { ($random.NextDouble() - 0.5) * 20 }) | ForEach-Object { [BitConverter]::GetBytes([float]$_) }) }
        foreach ($block in 0, 1) {
            $null = $writer.AddTensor("blk.$block.ffn_down.weight.lora_a", [long[]](192, 4), $f32, (& $floats (192 * 4)))
            $null = $writer.AddTensor("blk.$block.ffn_down.weight.lora_b", [long[]](4, 64), $f32, (& $floats (4 * 64)))
        }
        $adapter = Join-Path $dir 'strong-lora.gguf'
        $writer.WriteTo($adapter)

        $base = Import-CkModel $tiny -Name base
        $tuned = Import-CkModel $tiny -Name tuned -Adapter $adapter
        @($tuned.Adapters) | Should -HaveCount 1
        $plain = (Invoke-CkCompletion 'Adapters change' -Model base -Temperature 0 -MaxTokens 12).Text
        $adapted = (Invoke-CkCompletion 'Adapters change' -Model tuned -Temperature 0 -MaxTokens 12).Text
        $adapted | Should -Not -Be $plain

        $err = { Import-CkModel $tiny -Name wrong -Adapter $tiny -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidModelFile,CkLlm.Commands.ImportCkModelCommand' -PassThru
        $err.CategoryInfo.Category | Should -Be 'InvalidData'
        $err.Exception.Message | Should -BeLike '*not a LoRA adapter*'
    }

    It 'reports a missing file as ObjectNotFound with the path as target' {
        $missing = Join-Path $dir 'missing.gguf'
        $result = Import-CkModel $missing -ErrorAction SilentlyContinue -ErrorVariable problems
        $result | Should -BeNullOrEmpty
        $problems.Count | Should -Be 1
        $problems[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $problems[0].TargetObject | Should -Be $missing
    }

    It 'reports a non-GGUF file as InvalidData naming the file and the reason' {
        $bad = Join-Path $dir 'notes.gguf'
        Set-Content $bad 'just some text'
        Import-CkModel $bad -ErrorAction SilentlyContinue -ErrorVariable problems | Should -BeNullOrEmpty
        $problems[0].CategoryInfo.Category | Should -Be 'InvalidData'
        $problems[0].TargetObject | Should -Be $bad
        $problems[0].Exception.Message | Should -Match 'notes\.gguf'
        $problems[0].Exception.Message | Should -Match 'magic'
        Get-CkModel | Should -BeNullOrEmpty
    }

    It 'reports a truncated model as InvalidData' {
        $truncated = Join-Path $dir 'truncated.gguf'
        $bytes = [IO.File]::ReadAllBytes($tiny)
        [IO.File]::WriteAllBytes($truncated, $bytes[0..([int]($bytes.Length / 2))])
        Import-CkModel $truncated -ErrorAction SilentlyContinue -ErrorVariable problems | Should -BeNullOrEmpty
        $problems[0].CategoryInfo.Category | Should -Be 'InvalidData'
        $problems[0].TargetObject | Should -Be $truncated
    }

    It 'survives 220 truncated and bit-flipped copies in one process, with an error for each rejected file' {
        $script = @"
`$ErrorActionPreference = 'Continue'
Import-Module '$env:CKLLM_MODULE'
`$source = '$tiny'
`$work = Join-Path ([IO.Path]::GetTempPath()) "ckllm-fuzz-`$([guid]::NewGuid().ToString('N'))"
New-Item -ItemType Directory `$work | Out-Null
`$bytes = [IO.File]::ReadAllBytes(`$source)
`$random = [Random]::new(12345)
`$files = @()
for (`$i = 0; `$i -lt 100; `$i++) {
    `$length = if (`$i -lt 50) { `$random.Next(0, 20000) } else { `$random.Next(0, `$bytes.Length - 1) }
    `$file = Join-Path `$work "truncated-`$i.gguf"
    `$part = [byte[]]::new(`$length)
    [Array]::Copy(`$bytes, `$part, `$length)
    [IO.File]::WriteAllBytes(`$file, `$part)
    `$files += `$file
}
for (`$i = 0; `$i -lt 120; `$i++) {
    `$copy = [byte[]]`$bytes.Clone()
    `$flips = `$random.Next(1, 4)
    for (`$f = 0; `$f -lt `$flips; `$f++) {
        `$offset = if (`$i -lt 100) { `$random.Next(0, 24000) } else { `$random.Next(0, `$copy.Length) }
        `$copy[`$offset] = `$copy[`$offset] -bxor (1 -shl `$random.Next(0, 8))
    }
    `$file = Join-Path `$work "flipped-`$i.gguf"
    [IO.File]::WriteAllBytes(`$file, `$copy)
    `$files += `$file
}
`$rejected = 0; `$loaded = 0; `$silent = 0; `$truncatedRejected = 0
foreach (`$file in `$files) {
    `$problems = `$null
    `$model = Import-CkModel -LiteralPath `$file -ContextSize 256 -ErrorAction SilentlyContinue -ErrorVariable problems
    if (`$model) { `$loaded++; `$model | Remove-CkModel -Confirm:`$false }
    elseif (`$problems.Count -ge 1 -and `$problems[0].CategoryInfo.Category -eq 'InvalidData' -and `$problems[0].TargetObject -eq `$file) {
        `$rejected++
        if (`$file -like '*truncated-*') { `$truncatedRejected++ }
    }
    else { `$silent++ }
}
Remove-Item `$work -Recurse -Force
"FILES=`$(`$files.Count) REJECTED=`$rejected LOADED=`$loaded SILENT=`$silent TRUNCATED_REJECTED=`$truncatedRejected"
'SURVIVED'
"@
        $run = Invoke-CkChildPwsh $script
        $summary = $run.Output | Where-Object { $_ -like 'FILES=*' }
        $run.Output | Should -Contain 'SURVIVED' -Because ($run.Output -join "`n")
        $summary | Should -Match 'FILES=220 '
        # Every file either loaded (a flip the format tolerates, e.g. in weight data) or failed with an InvalidData error.
        $summary | Should -Match ' SILENT=0 '
        $summary | Should -Match 'TRUNCATED_REJECTED=100$'
        # Flips inside token texts or weights give valid (different) models; structural ones must be rejected.
        [int]($summary -replace '.*REJECTED=(\d+) LOADED.*', '$1') | Should -BeGreaterOrEqual 120
    }
}
