# Knowledge cmdlets against a knowledge base on a real PostgreSQL server (started here, removed afterwards).
BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Knowledge.TestHelpers.ps1')
    . (Join-Path $PSScriptRoot 'Postgres.TestHelpers.ps1')
    $script:pg = Start-CkTestPostgres
    $script:root = New-KbTestDirectory
    # Reader caches go to a folder of this test, not the user's.
    $script:savedCache = $env:CKLLM_CACHE
    $env:CKLLM_CACHE = Join-Path $root 'cache'
    $script:corpus = Join-Path $root 'corpus'
    New-KbTestCorpus $corpus 6
}

AfterAll {
    $env:CKLLM_CACHE = $savedCache
    Remove-KbTestDirectory $root
    Stop-CkTestPostgres $pg
}

Describe 'Knowledge cmdlets with a postgresql:// knowledge base' {
    It 'adds, lists, searches and removes through the URI, and shows no password' {
        $uri = Get-CkTestPostgresUri $pg 'basic'
        $added = Get-ChildItem $corpus | Select-Object -First 3 | Add-CkKnowledge -KnowledgeBase $uri -ChunkSize 48 -ChunkOverlap 8
        @($added | Where-Object Status -eq 'Added').Count | Should -Be 3
        @(Get-CkKnowledge -KnowledgeBase $uri).Count | Should -Be 3
        $stats = Get-CkKnowledge -KnowledgeBase $uri -Statistics
        $stats.Directory | Should -Not -Match $pg.Password
        $stats.IndexedVectors | Should -Be $stats.Chunks
        $hit = @(Search-CkKnowledge 'history of volcanoes' -KnowledgeBase $uri -Top 2)
        $hit.Count | Should -Be 2
        Get-CkKnowledge -KnowledgeBase $uri | Select-Object -First 1 | Remove-CkKnowledge -KnowledgeBase $uri -Confirm:$false | Out-Null
        @(Get-CkKnowledge -KnowledgeBase $uri).Count | Should -Be 2
    }

    It 'never creates a knowledge base from a read cmdlet' {
        $uri = Get-CkTestPostgresUri $pg 'typo'
        { Get-CkKnowledge -KnowledgeBase $uri -ErrorAction Stop } | Should -Throw -ErrorId 'KnowledgeBaseNotFound,CkLlm.Commands.GetCkKnowledgeCommand'
        { Search-CkKnowledge 'x' -KnowledgeBase $uri -ErrorAction Stop } | Should -Throw -ErrorId 'KnowledgeBaseNotFound,CkLlm.Commands.SearchCkKnowledgeCommand'
        { Get-CkKnowledge -KnowledgeBase $uri -ErrorAction Stop } | Should -Throw -ErrorId 'KnowledgeBaseNotFound,CkLlm.Commands.GetCkKnowledgeCommand'
    }

    It 'takes the password from -Credential or PGPASSWORD, and tells a refused login from an unreachable server' {
        $uri = Get-CkTestPostgresUri $pg 'auth' -NoPassword
        $cred = [pscredential]::new($pg.User, (ConvertTo-SecureString $pg.Password -AsPlainText -Force))
        Add-CkKnowledge -Text 'Credentials open the door.' -Source door -KnowledgeBase $uri -Credential $cred | Out-Null
        $saved = $env:PGPASSWORD
        try {
            $env:PGPASSWORD = $pg.Password
            Close-KbTestKnowledgeBase $uri
            @(Get-CkKnowledge -KnowledgeBase $uri).Source | Should -Be 'door'
            $env:PGPASSWORD = 'wrong'
            Close-KbTestKnowledgeBase $uri
            $e = { Get-CkKnowledge -KnowledgeBase $uri -ErrorAction Stop } | Should -Throw -ErrorId 'KnowledgeServerAuthentication,CkLlm.Commands.GetCkKnowledgeCommand' -PassThru
            $e.CategoryInfo.Category | Should -Be 'AuthenticationError'
        }
        finally { $env:PGPASSWORD = $saved }
        $closed = Get-CkTestPostgresUri $pg 'auth'
        $closed = $closed -replace ":$($pg.Port)/", ':1/'
        $e = { Get-CkKnowledge -KnowledgeBase $closed -ErrorAction Stop } | Should -Throw -ErrorId 'KnowledgeServerUnreachable,CkLlm.Commands.GetCkKnowledgeCommand' -PassThru
        $e.CategoryInfo.Category | Should -Be 'ConnectionError'
        $e.Exception.Message | Should -Match '127\.0\.0\.1:1\b'
        $e.Exception.Message | Should -Not -Match $pg.Password
    }

    It 'survives two writer processes and three readers at once, and a writer killed with kill -9' {
        $uri = Get-CkTestPostgresUri $pg 'shared'
        $add = "Get-ChildItem '$corpus' | Add-CkKnowledge -KnowledgeBase '$uri' -ChunkSize 48 -ChunkOverlap 8 -Force | ForEach-Object { 'COMMITTED ' + `$_.Source }"
        # The first writer creates the knowledge base, so readers can start on it.
        Add-CkKnowledge -Text 'seed' -Source seed -KnowledgeBase $uri | Out-Null
        $writers = 1..2 | ForEach-Object { Start-KbChildPwsh $add }
        $read = "`$n = 0; while (`$n -lt 15) { `$null = Search-CkKnowledge 'volcanoes and glaciers' -KnowledgeBase '$uri' -Top 3; `$n++; Start-Sleep -Milliseconds 300 }; 'READER OK'"
        $readers = 1..3 | ForEach-Object { Start-KbChildPwsh $read }
        $victim = Start-KbChildPwsh $add
        try {
            $committed = 0
            while ($committed -lt 2) {
                $line = $victim.StandardOutput.ReadLine()
                if ($null -eq $line) { break }
                if ($line -like 'COMMITTED *') { $committed++ }
            }
            $victim.HasExited | Should -BeFalse -Because 'the victim must be mid-ingest when it is killed'
            & kill -9 $victim.Id
            foreach ($p in @($writers) + @($readers)) {
                $p.WaitForExit(600000) | Should -BeTrue
                $err = $p.StandardError.ReadToEnd()
                $p.ExitCode | Should -Be 0 -Because $err
            }
            foreach ($p in $readers) { $p.StandardOutput.ReadToEnd() | Should -Match 'READER OK' }
        }
        finally { foreach ($p in @($writers) + @($readers) + @($victim)) { if (-not $p.HasExited) { $p.Kill() } } }

        Close-KbTestKnowledgeBase $uri
        $sources = @(Get-CkKnowledge -KnowledgeBase $uri)
        $stats = Get-CkKnowledge -KnowledgeBase $uri -Statistics
        $sources.Count | Should -Be 7 -Because 'six files once each (no duplicates from three writers) and the seed'
        ($sources | Measure-Object Chunks -Sum).Sum | Should -Be $stats.Chunks -Because 'no source is half-written'
        $stats.IndexedVectors | Should -Be $stats.Chunks
    }

    It 'keeps every source whole and none twice while two processes sync and prune and a third writes' {
        $uri = Get-CkTestPostgresUri $pg 'syncing'
        $dir = Join-Path $root 'sync-corpus'
        New-KbTestCorpus $dir 8
        Get-ChildItem $dir | Add-CkKnowledge -KnowledgeBase $uri -ChunkSize 48 -ChunkOverlap 8 | Out-Null
        # The writer takes files away and puts them back (same content, then changed), adding each again, and adds new
        # ones: a pruner that listed a file while it was gone must not remove it once it is back.
        $write = @"
foreach (`$round in 1..3) {
    foreach (`$f in Get-ChildItem '$dir' -Filter 'doc00*.md' | Select-Object -First 3) {
        `$text = Get-Content -Raw -LiteralPath `$f.FullName
        Remove-Item -LiteralPath `$f.FullName
        Start-Sleep -Milliseconds 150
        if (`$round -eq 3) { `$text += "``nRevised in round `$round." }
        Set-Content -LiteralPath `$f.FullName -Value `$text -NoNewline
        Add-CkKnowledge -Path `$f.FullName -KnowledgeBase '$uri' -ChunkSize 48 -ChunkOverlap 8 | Out-Null
    }
    Set-Content -LiteralPath (Join-Path '$dir' "new`$round.md") -Value "# New `$round``n``nLighthouses and comets, note `$round."
    Add-CkKnowledge -Path (Join-Path '$dir' "new`$round.md") -KnowledgeBase '$uri' -ChunkSize 48 -ChunkOverlap 8 | Out-Null
}
'WRITER OK'
"@
        $sync = "foreach (`$i in 1..8) { Sync-CkKnowledge -KnowledgeBase '$uri' -Force -Confirm:`$false | Out-Null; Start-Sleep -Milliseconds 100 }; 'SYNC OK'"
        $procs = @(Start-KbChildPwsh $write) + @(1..2 | ForEach-Object { Start-KbChildPwsh $sync })
        try {
            foreach ($p in $procs) {
                $p.WaitForExit(600000) | Should -BeTrue
                $err = $p.StandardError.ReadToEnd()
                $p.ExitCode | Should -Be 0 -Because $err
                $p.StandardOutput.ReadToEnd() | Should -Match 'OK'
            }
        }
        finally { foreach ($p in $procs) { if (-not $p.HasExited) { $p.Kill() } } }

        Close-KbTestKnowledgeBase $uri
        $sources = @(Get-CkKnowledge -KnowledgeBase $uri)
        $files = @(Get-ChildItem $dir -File | ForEach-Object FullName | Sort-Object)
        @($sources.Source | Sort-Object) | Should -Be $files -Because 'every file is back at the end: none lost, none twice'
        $stats = Get-CkKnowledge -KnowledgeBase $uri -Statistics
        ($sources | Measure-Object Chunks -Sum).Sum | Should -Be $stats.Chunks -Because 'no source is half-written'
        $stats.IndexedVectors | Should -Be $stats.Chunks
        $revised = $sources | Where-Object { $_.Source -like '*doc001.md' }
        $revised.ContentHash | Should -Be (Get-FileHash -Algorithm SHA256 -LiteralPath $revised.Source).Hash
    }

    It 'serves a knowledge base on the server with Start-CkServer -KnowledgeBase postgresql://... -Credential' {
        $uri = Get-CkTestPostgresUri $pg 'served' -NoPassword
        $cred = [pscredential]::new($pg.User, (ConvertTo-SecureString $pg.Password -AsPlainText -Force))
        Get-ChildItem $corpus | Select-Object -First 3 | Add-CkKnowledge -KnowledgeBase $uri -Credential $cred -ChunkSize 48 -ChunkOverlap 8 | Out-Null
        Close-KbTestKnowledgeBase $uri
        $server = Start-CkServer -Port 0 -KnowledgeBase $uri -Credential $cred
        try {
            (Invoke-RestMethod ($server.Url.AbsoluteUri + 'v1/models')).data.id | Should -Contain 'rag/served'
            $body = @{ knowledge_base = 'served'; query = 'history of volcanoes'; top = 2; mode = 'Keyword' } | ConvertTo-Json
            $r = Invoke-RestMethod ($server.Url.AbsoluteUri + 'v1/search') -Method Post -ContentType 'application/json' -Body $body
            $expected = Search-CkKnowledge 'history of volcanoes' -KnowledgeBase $uri -Top 2 -Mode Keyword
            $r.data.source | Should -Be $expected.Source
        }
        finally { Stop-CkServer -Id $server.Id }
        $missing = Get-CkTestPostgresUri $pg 'not-there' -NoPassword
        { Start-CkServer -Port 0 -KnowledgeBase $missing -Credential $cred -ErrorAction Stop } | Should -Throw -ErrorId 'KnowledgeBaseNotFound,CkLlm.Commands.StartCkServerCommand'
    }

    It 'copies a folder knowledge base to the server and back with the same vectors, and -WhatIf creates nothing' {
        $folder = Join-Path $root 'folder-kb'
        Get-ChildItem $corpus | Select-Object -First 4 | Add-CkKnowledge -KnowledgeBase $folder -ChunkSize 48 -ChunkOverlap 8 | Out-Null
        $uri = Get-CkTestPostgresUri $pg 'copied'
        Copy-CkKnowledge -From $folder -To $uri -WhatIf
        { Get-CkKnowledge -KnowledgeBase $uri -ErrorAction Stop } | Should -Throw -ErrorId 'KnowledgeBaseNotFound,CkLlm.Commands.GetCkKnowledgeCommand'

        $up = Copy-CkKnowledge -From $folder -To $uri
        @($up | Where-Object Status -eq 'Added').Count | Should -Be 4
        @(Copy-CkKnowledge -From $folder -To $uri | Where-Object Status -eq 'Skipped').Count | Should -Be 4
        $back = Join-Path $root 'back-kb'
        Copy-CkKnowledge -From $uri -To $back | Out-Null
        # Same vectors: the same vector-mode scores, to the last digit, in all three.
        $q = 'history of volcanoes'
        $a = Search-CkKnowledge $q -KnowledgeBase $folder -Mode Vector -Top 5
        $b = Search-CkKnowledge $q -KnowledgeBase $uri -Mode Vector -Top 5
        $c = Search-CkKnowledge $q -KnowledgeBase $back -Mode Vector -Top 5
        $b.Score | Should -Be $a.Score
        $c.Score | Should -Be $a.Score
        $c.Text | Should -Be $a.Text
        (Get-CkKnowledge -KnowledgeBase $back -Statistics).Embedder | Should -Be (Get-CkKnowledge -KnowledgeBase $folder -Statistics).Embedder
    }
}
