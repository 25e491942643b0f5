BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Knowledge.TestHelpers.ps1')
}

Describe 'Add-CkKnowledge' {
    BeforeEach {
        $root = New-KbTestDirectory
        $kb = Join-Path $root 'kb'
        $docs = Join-Path $root 'docs'
        New-Item -ItemType Directory $docs | Out-Null
        Set-Content -LiteralPath (Join-Path $docs 'b [1].md') -Value "# Birds`n`n## Penguins`n`nPenguins live in Antarctica and cannot fly."
        Set-Content -LiteralPath (Join-Path $docs 'a.txt') -Value 'Sailing boats need wind; a keel keeps them upright.'
        [IO.File]::WriteAllBytes((Join-Path $docs 'image.dat'), [byte[]](0..255))
    }
    AfterEach { Remove-KbTestDirectory $root }

    It 'adds Get-ChildItem output through -LiteralPath, keeps "b [1].md", and reports a binary file without stopping' {
        $results = Get-ChildItem -LiteralPath $docs | Add-CkKnowledge -KnowledgeBase $kb -ErrorVariable errs -ErrorAction SilentlyContinue
        $results.Source | Should -Be @((Join-Path $docs 'a.txt'), (Join-Path $docs 'b [1].md'))
        $results.Status | Should -Be @('Added', 'Added')
        $errs.Count | Should -Be 1
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'UnreadableDocument*'
        $errs[0].CategoryInfo.Category | Should -Be 'ReadError'
        $errs[0].TargetObject | Should -Be (Join-Path $docs 'image.dat')
    }

    It 'expands wildcards in -Path, skips unchanged files and updates changed ones' {
        (Add-CkKnowledge -Path (Join-Path $docs '*.txt') -KnowledgeBase $kb).Status | Should -Be 'Added'
        (Add-CkKnowledge -Path (Join-Path $docs '*.txt') -KnowledgeBase $kb).Status | Should -Be 'Skipped'
        Set-Content -LiteralPath (Join-Path $docs 'a.txt') -Value 'Rowing boats need oars.'
        (Add-CkKnowledge -Path (Join-Path $docs '*.txt') -KnowledgeBase $kb).Status | Should -Be 'Updated'
    }

    It 'writes a non-terminating error for a path that does not exist' {
        $out = Add-CkKnowledge -LiteralPath (Join-Path $docs 'nope.md') -KnowledgeBase $kb -ErrorVariable errs -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        $errs[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }

    It 'adds -Text with -Metadata and records from Import-Csv with -TextProperty' {
        $t = Add-CkKnowledge -Text 'The capital of France is Paris.' -Source fact -Metadata @{ topic = 'geo' } -KnowledgeBase $kb
        $t.Status | Should -Be 'Added'
        $csv = Join-Path $root 'people.csv'
        "Name,Role,Team`nAlice,kernel engineer,Kernel`nBob,interface designer,UX" | Set-Content $csv
        $r = Import-Csv $csv | Add-CkKnowledge -TextProperty Name, Role -Source people -KnowledgeBase $kb
        $r.Chunks | Should -Be 2
        $hit = Search-CkKnowledge 'who designs the interface' -KnowledgeBase $kb -Top 1 -Filter @{ Team = 'UX' }
        $hit.Text | Should -Be "Name: Bob`nRole: interface designer"
        $hit.Metadata['Team'] | Should -Be 'UX'
        (Search-CkKnowledge 'capital of France' -KnowledgeBase $kb -Top 1).Metadata['topic'] | Should -Be 'geo'
    }

    It 'changes nothing with -WhatIf' {
        Get-ChildItem -LiteralPath $docs -Filter *.md | Add-CkKnowledge -KnowledgeBase $kb -WhatIf | Should -BeNullOrEmpty
        (Get-CkKnowledge -KnowledgeBase $kb -Statistics).Sources | Should -Be 0
    }

    It 'prunes sources whose files are gone with -Prune' {
        Get-ChildItem -LiteralPath $docs -Filter *.txt | Add-CkKnowledge -KnowledgeBase $kb | Out-Null
        Remove-Item -LiteralPath (Join-Path $docs 'a.txt')
        $out = Add-CkKnowledge -LiteralPath (Join-Path $docs 'b [1].md') -KnowledgeBase $kb -Prune
        ($out | Where-Object Status -eq 'Removed').Source | Should -Be (Join-Path $docs 'a.txt')
        (Get-CkKnowledge -KnowledgeBase $kb).Source | Should -Be (Join-Path $docs 'b [1].md')
    }

    It 'refuses an overlap that is not smaller than the chunk size' {
        $err = { Add-CkKnowledge -Text 'x' -ChunkSize 32 -ChunkOverlap 32 -KnowledgeBase $kb -ErrorAction Stop } |
            Should -Throw -ErrorId 'InvalidChunkOverlap,CkLlm.Commands.AddCkKnowledgeCommand' -PassThru
        $err.CategoryInfo.Category | Should -Be 'InvalidArgument'
        $err.Exception.Message | Should -BeLike '*ChunkOverlap (32)*ChunkSize (32)*'
        Test-Path -LiteralPath $kb | Should -BeFalse -Because 'a refused call writes nothing'
    }

    It 'refuses an embedding model of another dimension than the knowledge base was built with' {
        Add-CkKnowledge -Text 'Built with MiniLM.' -Source minilm -KnowledgeBase $kb | Out-Null
        $model = Join-Path $root 'embed.gguf'
        New-CkModel -Path $model -Preset Tiny | Out-Null
        Close-KbTestKnowledgeBase $kb
        $err = { Add-CkKnowledge -Text 'x' -EmbeddingModel $model -KnowledgeBase $kb -ErrorAction Stop } |
            Should -Throw -ErrorId 'EmbedderMismatch,CkLlm.Commands.AddCkKnowledgeCommand' -PassThru
        $err.CategoryInfo.Category | Should -Be 'InvalidArgument'
        $err.Exception.Message | Should -BeLike '*all-MiniLM-L6-v2/384*cannot be mixed*'
    }

    It 'loads USearch and SQLite native libraries from the built module' {
        Add-CkKnowledge -Text 'native check' -Source native -KnowledgeBase $kb | Out-Null
        Search-CkKnowledge 'native' -KnowledgeBase $kb | Out-Null
        $deps = Join-Path (Split-Path $env:CKLLM_MODULE) 'deps'
        $maps = Get-Content "/proc/$PID/maps" | ForEach-Object { ($_ -split '\s+', 6)[5] } | Where-Object { $_ } | Sort-Object -Unique
        $maps | Should -Contain (Join-Path $deps 'libusearch_c.so')
        $maps | Should -Contain (Join-Path $deps 'libe_sqlite3.so')
        $maps | Should -Contain (Join-Path $deps 'libonnxruntime.so')
    }
}

Describe 'Add-CkKnowledge across processes' {
    BeforeAll {
        $root = New-KbTestDirectory
        $kb = Join-Path $root 'kb'
    }
    AfterAll { Remove-KbTestDirectory $root }

    It 'survives kill -9 mid-ingest: reopened, search works and no source is half-present' {
        $corpus = Join-Path $root 'corpus'
        New-KbTestCorpus $corpus 30
        # The child reports each source once it is committed; after three reports it is killed hard, mid-ingest.
        $child = Start-KbChildPwsh "Get-ChildItem '$corpus' | Add-CkKnowledge -KnowledgeBase '$kb' -ChunkSize 48 -ChunkOverlap 8 | ForEach-Object { 'COMMITTED ' + `$_.Source }"
        $committed = [Collections.Generic.List[string]]::new()
        try {
            $deadline = [DateTime]::UtcNow.AddMinutes(5)
            while ($committed.Count -lt 3 -and [DateTime]::UtcNow -lt $deadline) {
                $line = $child.StandardOutput.ReadLineAsync()
                $remaining = $deadline - [DateTime]::UtcNow
                if ($remaining -le [TimeSpan]::Zero -or -not $line.Wait($remaining) -or $null -eq $line.Result) { break }
                if ($line.Result -like 'COMMITTED *') { $committed.Add($line.Result.Substring(10)) }
            }
            $committed.Count | Should -Be 3 -Because "the child reports committed sources ($($child.HasExited ? $child.StandardError.ReadToEnd() : 'still running'))"
            $child.HasExited | Should -BeFalse -Because 'the child must still be ingesting when it is killed'
            & kill -9 $child.Id
            $child.WaitForExit()
        }
        finally { if (-not $child.HasExited) { $child.Kill() } }

        Close-KbTestKnowledgeBase $kb
        $sources = @(Get-CkKnowledge -KnowledgeBase $kb)
        $stats = Get-CkKnowledge -KnowledgeBase $kb -Statistics
        # Everything reported as committed survived the kill; the rest of the 30 had not all been added.
        $sources.Source | Should -Contain $committed[0]
        $sources.Source | Should -Contain $committed[2]
        $sources.Count | Should -BeGreaterOrEqual 3
        $sources.Count | Should -BeLessThan 30
        ($sources | Measure-Object Chunks -Sum).Sum | Should -Be $stats.Chunks
        $stats.IndexedVectors | Should -Be $stats.Chunks
        # Each committed source has all its chunks: re-adding skips exactly those and adds the rest.
        $again = Get-ChildItem $corpus | Add-CkKnowledge -KnowledgeBase $kb -ChunkSize 48 -ChunkOverlap 8
        @($again | Where-Object Status -eq 'Skipped').Count | Should -Be $sources.Count
        @($again | Where-Object Status -eq 'Added').Count | Should -Be (30 - $sources.Count)
        @(Search-CkKnowledge 'history of volcanoes' -KnowledgeBase $kb -Top 3).Count | Should -Be 3
    }

    It 'lets two pwsh processes add at once (one writer at a time) and keeps everything' {
        $kb2 = Join-Path $root 'kb2'
        $c1 = Join-Path $root 'c1'; $c2 = Join-Path $root 'c2'
        New-KbTestCorpus $c1 4 1
        New-KbTestCorpus $c2 4 1
        Rename-Item (Join-Path $c2 'doc001.md') 'other001.md'
        $p1 = Start-KbChildPwsh "Get-ChildItem '$c1' | Add-CkKnowledge -KnowledgeBase '$kb2' | ForEach-Object Status"
        $p2 = Start-KbChildPwsh "Get-ChildItem '$c2' | Add-CkKnowledge -KnowledgeBase '$kb2' | ForEach-Object Status"
        $out1 = $p1.StandardOutput.ReadToEnd(); $err1 = $p1.StandardError.ReadToEnd()
        $out2 = $p2.StandardOutput.ReadToEnd(); $err2 = $p2.StandardError.ReadToEnd()
        $p1.WaitForExit(); $p2.WaitForExit()
        $p1.ExitCode | Should -Be 0 -Because $err1
        $p2.ExitCode | Should -Be 0 -Because $err2
        @($out1 -split "`n" | Where-Object { $_ -match 'Added' }).Count | Should -Be 4
        @($out2 -split "`n" | Where-Object { $_ -match 'Added' }).Count | Should -Be 4
        Close-KbTestKnowledgeBase $kb2
        $stats = Get-CkKnowledge -KnowledgeBase $kb2 -Statistics
        $stats.Sources | Should -Be 8
        $stats.IndexedVectors | Should -Be $stats.Chunks
    }
}
