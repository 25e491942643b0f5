<#
.SYNOPSIS
    PostgreSQL knowledge-base benchmark: the server store against the folder store, same embedder, same run. Writes the
    Postgres section of docs/benchmarks.md.
.DESCRIPTION
    Material: the machine's man pages for the pages that tests/bench/knowledge-questions.csv asks about (man | col -b,
    converted at run time, never committed); queries: those questions. A throwaway PostgreSQL 15 cluster is started
    (tests/pester/Postgres.TestHelpers.ps1) and removed afterwards. What a user gets with default flags
    (Add-CkKnowledge / Search-CkKnowledge, default chunking, MiniLM, hybrid search):
    - ingest chunks/s into PostgreSQL vs into a folder (goal >= 0.9: the embedder dominates);
    - search p50/p99 with a warm local cache, PostgreSQL vs folder (goal within 1.2x);
    - catch-up: the first search after another writer committed 1,000 chunks (copies of stored rows, written in SQL
      exactly as a writer on another machine would: new source, chunks, change log, generation) minus a warm search;
    - four writer processes at once vs one, aggregate chunks/s.
    Run it with nice on a quiet machine (load < 3): it is CPU-bound for several minutes.
#>
[CmdletBinding()]
param(
    [string] $ModulePath = (Join-Path $PSScriptRoot '../../out/CkLlm/CkLlm.psd1'),
    [string] $WorkDirectory = (Join-Path ([IO.Path]::GetTempPath()) 'ckllm-postgres-bench'),
    [int] $MaxPages = 24,
    [int] $Queries = 60,
    [switch] $NoDocs
)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
. (Join-Path $PSScriptRoot '../pester/Postgres.TestHelpers.ps1')
. (Join-Path $PSScriptRoot 'BenchDocs.ps1')
$ModulePath = (Resolve-Path $ModulePath).Path
Import-Module $ModulePath -Force

Remove-Item -Recurse -Force $WorkDirectory -ErrorAction Ignore
$pagesDir = New-Item -ItemType Directory -Force (Join-Path $WorkDirectory 'pages')
$questions = Import-Csv (Join-Path $PSScriptRoot 'knowledge-questions.csv')
$env:MANWIDTH = '80'
foreach ($page in ($questions.page | Select-Object -Unique | Select-Object -First $MaxPages)) {
    $text = & bash -c "man '$page' 2>/dev/null | col -b"
    if ($LASTEXITCODE -eq 0 -and $text) { Set-Content -LiteralPath (Join-Path $pagesDir "$page.txt") -Value $text }
}
$files = @(Get-ChildItem $pagesDir -File | Sort-Object Name)
if ($files.Count -lt 5) { throw "Only $($files.Count) man pages could be converted; install man-db and manpages." }
$queryList = @($questions.question | Select-Object -First $Queries)

$pg = Start-CkTestPostgres
$env:CKLLM_CACHE = Join-Path $WorkDirectory 'cache'
try {
    function Measure-Ingest([string] $Kb) {
        $watch = [Diagnostics.Stopwatch]::StartNew()
        $r = $files | Add-CkKnowledge -KnowledgeBase $Kb
        $watch.Stop()
        [pscustomobject]@{ Chunks = ($r | Measure-Object Chunks -Sum).Sum; Seconds = $watch.Elapsed.TotalSeconds }
    }
    function Measure-Search([string] $Kb) {
        foreach ($q in $queryList | Select-Object -First 5) { $null = Search-CkKnowledge $q -KnowledgeBase $Kb } # warm-up
        $ms = foreach ($q in $queryList) {
            $w = [Diagnostics.Stopwatch]::StartNew(); $null = Search-CkKnowledge $q -KnowledgeBase $Kb; $w.Elapsed.TotalMilliseconds
        }
        $sorted = @($ms | Sort-Object)
        [pscustomobject]@{ P50 = $sorted[[int][Math]::Floor(0.5 * ($sorted.Count - 1))]; P99 = $sorted[[int][Math]::Floor(0.99 * ($sorted.Count - 1))] }
    }

    # Keyword mode only (no embedding): does the question's man page come first / in the top 5?
    function Measure-KeywordQuality([string] $Kb) {
        $asked = @($questions | Where-Object { Test-Path (Join-Path $pagesDir "$($_.page).txt") })
        $first = 0; $top5 = 0
        foreach ($row in $asked) {
            $pages = @(Search-CkKnowledge $row.question -KnowledgeBase $Kb -Mode Keyword -Top 5 | ForEach-Object { [IO.Path]::GetFileNameWithoutExtension($_.Source) })
            if ($pages.Count -gt 0 -and $pages[0] -eq $row.page) { $first++ }
            if ($pages -contains $row.page) { $top5++ }
        }
        [pscustomobject]@{ Questions = $asked.Count; Hit1 = $first / [Math]::Max(1, $asked.Count); Hit5 = $top5 / [Math]::Max(1, $asked.Count) }
    }

    # Load the embedder once before timing, so neither store pays for it.
    Add-CkKnowledge -Text 'warm-up' -Source warm -KnowledgeBase (Join-Path $WorkDirectory 'warm-kb') | Out-Null
    Write-Host "==> ingest $($files.Count) man pages: folder, then PostgreSQL" -ForegroundColor Cyan
    $folder = Join-Path $WorkDirectory 'folder-kb'
    $uri = Get-CkTestPostgresUri $pg 'bench'
    $folderIngest = Measure-Ingest $folder
    $pgIngest = Measure-Ingest $uri
    $folderRate = $folderIngest.Chunks / $folderIngest.Seconds
    $pgRate = $pgIngest.Chunks / $pgIngest.Seconds

    Write-Host "==> search $($queryList.Count) questions, warm, hybrid (default)" -ForegroundColor Cyan
    $folderSearch = Measure-Search $folder
    $pgSearch = Measure-Search $uri

    Write-Host '==> keyword-mode quality on the questions' -ForegroundColor Cyan
    $folderKeyword = Measure-KeywordQuality $folder
    $pgKeyword = Measure-KeywordQuality $uri

    Write-Host '==> catch-up after 1,000 chunks committed elsewhere' -ForegroundColor Cyan
    $env:PGPASSWORD = $pg.Password
    $sql = @'
WITH kb AS (UPDATE ckllm_knowledge_bases SET generation = generation + 1, chunk_count = chunk_count + 1000 WHERE name = 'bench' RETURNING id, generation),
src AS (INSERT INTO ckllm_sources(kb_id, source, kind, format, content_hash, size, chunk_count, added_utc, updated_utc)
        SELECT id, 'elsewhere:' || generation, 'Text', 'Text', md5(generation::text), 0, 1000, now(), now() FROM kb RETURNING id, kb_id),
rows AS (SELECT c.*, row_number() OVER () AS n FROM ckllm_chunks c, generate_series(1, 1000) g WHERE c.kb_id = (SELECT id FROM kb) LIMIT 1000),
ins AS (INSERT INTO ckllm_chunks(kb_id, source_id, ordinal, text, heading, line_start, line_end, page, token_count, metadata, vector, tsv, tsv_length)
        SELECT src.kb_id, src.id, rows.n, rows.text, rows.heading, rows.line_start, rows.line_end, rows.page, rows.token_count, rows.metadata, rows.vector, rows.tsv, rows.tsv_length
        FROM rows, src RETURNING id, kb_id)
INSERT INTO ckllm_changes(kb_id, generation, chunk_id, added) SELECT ins.kb_id, kb.generation, ins.id, true FROM ins, kb;
'@
    $warm = (Measure-Search $uri).P50
    & psql -q -h 127.0.0.1 -p $pg.Port -U $pg.User -d postgres -v ON_ERROR_STOP=1 -c $sql | Out-Null
    if ($LASTEXITCODE -ne 0) { throw 'Adding 1,000 chunks in SQL failed.' }
    $w = [Diagnostics.Stopwatch]::StartNew(); $null = Search-CkKnowledge $queryList[0] -KnowledgeBase $uri; $first = $w.Elapsed.TotalMilliseconds
    $catchUp = $first - $warm
    $stats = Get-CkKnowledge -KnowledgeBase $uri -Statistics
    if ($stats.IndexedVectors -ne $stats.Chunks) { throw "The cache holds $($stats.IndexedVectors) vectors, the database $($stats.Chunks)." }

    Write-Host '==> four writer processes vs one (PostgreSQL)' -ForegroundColor Cyan
    $pwshDll = Join-Path $PSHOME 'pwsh.dll'
    $pre = @(if ((Split-Path ([Environment]::ProcessPath) -Leaf) -like 'dotnet*') { $pwshDll })
    function Invoke-Writers([int] $Count, [string] $Name) {
        $target = Get-CkTestPostgresUri $pg $Name
        Add-CkKnowledge -Text 'seed' -Source seed -KnowledgeBase $target | Out-Null # created once, not by four at once
        $groups = 0..($Count - 1) | ForEach-Object { $i = $_; ,@($files | Where-Object { [array]::IndexOf($files, $_) % $Count -eq $i } | ForEach-Object FullName) }
        $watch = [Diagnostics.Stopwatch]::StartNew()
        $procs = foreach ($g in $groups) {
            $list = ($g | ForEach-Object { "'$_'" }) -join ','
            $script = "`$ProgressPreference='SilentlyContinue'; Import-Module '$ModulePath'; ($list) | Add-CkKnowledge -KnowledgeBase '$target' | Measure-Object Chunks -Sum | ForEach-Object Sum"
            $psi = [Diagnostics.ProcessStartInfo]::new([Environment]::ProcessPath)
            foreach ($a in @($pre) + @('-NoProfile', '-NonInteractive', '-Command', $script)) { $psi.ArgumentList.Add($a) }
            $psi.RedirectStandardOutput = $true; $psi.UseShellExecute = $false
            [Diagnostics.Process]::Start($psi)
        }
        $chunks = 0
        foreach ($p in $procs) { $out = $p.StandardOutput.ReadToEnd(); $p.WaitForExit(); if ($p.ExitCode -ne 0) { throw "A writer failed: $out" }; $chunks += [int]($out.Trim() -split "`n")[-1] }
        $watch.Stop()
        $chunks / $watch.Elapsed.TotalSeconds
    }
    $one = Invoke-Writers 1 'writers1'
    $four = Invoke-Writers 4 'writers4'
}
finally {
    Stop-CkTestPostgres $pg
    Remove-Item Env:PGPASSWORD -ErrorAction Ignore
}

$cpu = (Get-Content /proc/cpuinfo | Select-String 'model name' | Select-Object -First 1).Line -replace '.*:\s*', ''
$lines = @(
    '## PostgreSQL store (tests/bench/Postgres.Bench.ps1)',
    '',
    "$(Get-Date -Format 'yyyy-MM-dd'), $cpu, $([Environment]::ProcessorCount) cores, load at start $((Get-Content /proc/loadavg) -split ' ' | Select-Object -First 1). " +
    "$($files.Count) man pages ($($folderIngest.Chunks) chunks, default chunking, MiniLM), $($queryList.Count) questions from tests/bench/knowledge-questions.csv, " +
    'hybrid search with default flags; PostgreSQL 15 on the same machine (throwaway cluster, fsync off).',
    '',
    '| measure | folder (SQLite) | PostgreSQL | ratio |',
    '|---|---|---|---|',
    ('| ingest chunks/s | {0:N1} | {1:N1} | {2:N3} (goal >= 0.9) |' -f $folderRate, $pgRate, ($pgRate / $folderRate)),
    ('| search p50, warm cache | {0:N1} ms | {1:N1} ms | {2:N2}x (goal <= 1.2x) |' -f $folderSearch.P50, $pgSearch.P50, ($pgSearch.P50 / $folderSearch.P50)),
    ('| search p99, warm cache | {0:N1} ms | {1:N1} ms | {2:N2}x |' -f $folderSearch.P99, $pgSearch.P99, ($pgSearch.P99 / $folderSearch.P99)),
    ('| keyword mode hit@1 ({3} questions) | {0:N3} | {1:N3} | {2:+0.000;-0.000;0} |' -f $folderKeyword.Hit1, $pgKeyword.Hit1, ($pgKeyword.Hit1 - $folderKeyword.Hit1), $pgKeyword.Questions),
    ('| keyword mode hit@5 | {0:N3} | {1:N3} | {2:+0.000;-0.000;0} |' -f $folderKeyword.Hit5, $pgKeyword.Hit5, ($pgKeyword.Hit5 - $folderKeyword.Hit5)),
    '',
    ('Catch-up: the first search after another writer committed 1,000 chunks took {0:N0} ms more than a warm search (change log read, 1,000 vectors fetched and added to the local HNSW cache).' -f $catchUp),
    ('Writers: 1 process {0:N1} chunks/s, 4 processes at once {1:N1} chunks/s aggregate ({2:N2}x; embedding is CPU-bound, so on {3} cores more writers share the same cores; commits queue on the knowledge base''s row lock only for the insert).' -f $one, $four, ($four / $one), [Environment]::ProcessorCount)
)
$lines | ForEach-Object { Write-Host $_ }
if (-not $NoDocs) { Set-BenchmarkSection 'postgres' $lines }
