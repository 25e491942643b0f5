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
    - catch-up: the first search after another writer (a second process with its own cache, as another machine)
      committed about 1,000 chunks (Copy-CkKnowledge of whole sources from the first evaluation set), minus a warm search;
    - four writer processes at once vs one, aggregate chunks/s;
    - keyword-mode quality on the project's blind evaluation sets (tests/eval/<set>): each set's MiniLM folder knowledge
      base, the one tests/bench/Knowledge.Bench.ps1 builds under <EvalWorkDirectory>/kb/<set>-MiniLM (built here the
      same way when missing: tests/eval/<set>/Build-Corpus.ps1 into <EvalWorkDirectory>/corpus/<set>, then
      Add-CkKnowledge), is copied into PostgreSQL with Copy-CkKnowledge (no embedding again); the test-half questions
      are searched in keyword mode in both, documents ranked (one hit per source, as the Knowledge bench ranks them):
      hit@5 and MRR@10, and the hybrid (default) search p50/p99 at that size.
    Run it with nice on a quiet machine (load < 3): it is CPU-bound for several minutes (building a missing evaluation
    knowledge base embeds its whole corpus: tens of minutes).
#>
[CmdletBinding()]
param(
    [string] $ModulePath = (Join-Path $PSScriptRoot '../../out/CkLlm/CkLlm.psd1'),
    [string] $WorkDirectory = (Join-Path ([IO.Path]::GetTempPath()) 'ckllm-postgres-bench'),
    [int] $MaxPages = 24,
    [int] $Queries = 60,
    [string[]] $EvalSets = @('man-admin', 'debian-docs', 'dotnet-api'),
    # Knowledge.Bench.ps1's -WorkDirectory: its kb/<set>-MiniLM and corpus/<set> are reused, or built here.
    [string] $EvalWorkDirectory = (Join-Path $PSScriptRoot '../../.build/knowledge-bench'),
    # Test-half questions per set (0 = all); fewer only for a smoke run.
    [int] $EvalQuestions = 0,
    [switch] $NoDocs
)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
. (Join-Path $PSScriptRoot '../pester/Postgres.TestHelpers.ps1')
. (Join-Path $PSScriptRoot 'BenchDocs.ps1')
$ModulePath = (Resolve-Path $ModulePath).Path
Import-Module $ModulePath -Force
# Read before any work: the four-writer part leaves the load high at the end.
$loadAtStart = ((Get-Content /proc/loadavg) -split ' ')[0]

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

    # Documents ranked as the Knowledge bench ranks them (one hit per source); a hit matches an expected source as in
    # Measure-CkRetrieval (same path, same file name, or a path suffix at a folder boundary).
    function Test-ExpectedSource([string] $Actual, [string] $Expected) {
        $a = $Actual -replace '\\', '/'; $e = ($Expected -replace '\\', '/') -replace '^(\./)+', ''
        if ($a -ieq $e) { return $true }
        if ($e -notmatch '/' -and $a.Split('/')[-1] -ieq $e) { return $true }
        $a.EndsWith('/' + $e.TrimStart('/'), [StringComparison]::OrdinalIgnoreCase)
    }
    function Measure-KeywordQuality([string] $Kb, [object[]] $Asked) {
        $hit5 = 0; $mrr = 0.0
        foreach ($row in $Asked) {
            $expected = @($row.ExpectedSource -split '[;|]' | ForEach-Object Trim | Where-Object { $_ })
            $ranked = @(Search-CkKnowledge $row.Question -KnowledgeBase $Kb -Mode Keyword -Top 10 -MaxPerSource 1 | ForEach-Object Source)
            for ($i = 0; $i -lt $ranked.Count; $i++) {
                if (@($expected | Where-Object { Test-ExpectedSource $ranked[$i] $_ }).Count) {
                    if ($i -lt 5) { $hit5++ }
                    $mrr += 1.0 / ($i + 1)
                    break
                }
            }
        }
        [pscustomobject]@{ Hit5 = $hit5 / [Math]::Max(1, $Asked.Count); Mrr10 = $mrr / [Math]::Max(1, $Asked.Count) }
    }

    # The MiniLM folder knowledge base of an evaluation set, as Knowledge.Bench.ps1 builds it (reused when present).
    function Get-EvalKnowledgeBase([string] $Set) {
        $kb = Join-Path $EvalWorkDirectory "kb/$Set-MiniLM"
        if (Test-Path (Join-Path $kb 'knowledge.db')) { return $kb }
        $corpus = Join-Path $EvalWorkDirectory "corpus/$Set"
        if (-not (Test-Path $corpus) -or -not (Get-ChildItem $corpus -Recurse -File | Select-Object -First 1)) {
            Write-Host "==> build corpus $Set" -ForegroundColor Cyan
            & (Join-Path $PSScriptRoot "../eval/$Set/Build-Corpus.ps1") -OutputPath $corpus | Out-Host
        }
        Write-Host "==> embed corpus $Set into $kb (MiniLM)" -ForegroundColor Cyan
        # Unreadable files are skipped, as the Knowledge bench skips them.
        Get-ChildItem $corpus -Recurse -File | Sort-Object FullName | Add-CkKnowledge -KnowledgeBase $kb -Embedder MiniLM -ErrorAction SilentlyContinue | Out-Null
        $kb
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

    Write-Host '==> evaluation sets: keyword quality and hybrid latency, folder vs PostgreSQL' -ForegroundColor Cyan
    $evalRows = foreach ($set in $EvalSets) {
        $evalFolder = Get-EvalKnowledgeBase $set
        $evalUri = Get-CkTestPostgresUri $pg "eval-$set"
        $copy = [Diagnostics.Stopwatch]::StartNew()
        Copy-CkKnowledge -From $evalFolder -To $evalUri | Out-Null
        $copy.Stop()
        $asked = @(Import-Csv (Join-Path $PSScriptRoot "../eval/$set/questions.csv") | Where-Object { $_.split -eq 'test' -and $_.ExpectedSource } |
            Sort-Object { [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData([Text.Encoding]::UTF8.GetBytes($_.Question))) })
        if ($EvalQuestions -gt 0) { $asked = @($asked | Select-Object -First $EvalQuestions) }
        $latencyQueries = @($asked.Question)
        $queryList, $saved = $latencyQueries, $queryList
        $row = [pscustomobject]@{
            Set = $set; Chunks = (Get-CkKnowledge -KnowledgeBase $evalUri -Statistics).Chunks; Questions = $asked.Count; CopySeconds = $copy.Elapsed.TotalSeconds
            Folder = Measure-KeywordQuality $evalFolder $asked; Postgres = Measure-KeywordQuality $evalUri $asked
            FolderSearch = Measure-Search $evalFolder; PostgresSearch = Measure-Search $evalUri
        }
        $queryList = $saved
        $row
    }

    Write-Host '==> catch-up after about 1,000 chunks committed by another machine' -ForegroundColor Cyan
    $donor = Get-EvalKnowledgeBase $EvalSets[0]
    $picked = [Collections.Generic.List[string]]::new(); $pickedChunks = 0
    foreach ($s in Get-CkKnowledge -KnowledgeBase $donor) { if ($pickedChunks -ge 1000) { break }; $picked.Add($s.Source); $pickedChunks += $s.Chunks }
    $warm = (Measure-Search $uri).P50
    $otherCache = Join-Path $WorkDirectory 'other-machine-cache'
    $sourcesFile = Join-Path $WorkDirectory 'catch-up-sources.txt'
    Set-Content -LiteralPath $sourcesFile -Value $picked
    $pwshDll = Join-Path $PSHOME 'pwsh.dll'
    $pre = @(if ((Split-Path ([Environment]::ProcessPath) -Leaf) -like 'dotnet*') { $pwshDll })
    $copyScript = "`$ProgressPreference='SilentlyContinue'; `$env:CKLLM_CACHE='$otherCache'; Import-Module '$ModulePath'; " +
        "Copy-CkKnowledge -From '$donor' -To '$uri' -Source (Get-Content -LiteralPath '$sourcesFile') | Measure-Object Chunks -Sum | ForEach-Object Sum"
    $added = & ([Environment]::ProcessPath) @pre -NoProfile -NonInteractive -Command $copyScript
    if ($LASTEXITCODE -ne 0) { throw "The other machine's copy failed: $added" }
    $addedChunks = [int](@($added)[-1])
    $w = [Diagnostics.Stopwatch]::StartNew(); $null = Search-CkKnowledge $queryList[0] -KnowledgeBase $uri; $first = $w.Elapsed.TotalMilliseconds
    $catchUp = $first - $warm
    $stats = Get-CkKnowledge -KnowledgeBase $uri -Statistics
    if ($stats.IndexedVectors -ne $stats.Chunks) { throw "The cache holds $($stats.IndexedVectors) vectors, the database $($stats.Chunks)." }

    Write-Host '==> four writer processes vs one (PostgreSQL)' -ForegroundColor Cyan
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
}

$cpu = (Get-Content /proc/cpuinfo | Select-String 'model name' | Select-Object -First 1).Line -replace '.*:\s*', ''
$lines = @(
    '## PostgreSQL store (tests/bench/Postgres.Bench.ps1)',
    '',
    "Measured $(Get-Date -Format 'yyyy-MM-dd HH:mm') UTC, $cpu, $([Environment]::ProcessorCount) cores, load average $loadAtStart at the start. " +
    "$($files.Count) man pages ($($folderIngest.Chunks) chunks, default chunking, MiniLM), $($queryList.Count) questions from tests/bench/knowledge-questions.csv, " +
    'hybrid search with default flags; PostgreSQL 15 on the same machine (throwaway cluster, fsync off).',
    '',
    '| measure | folder (SQLite) | PostgreSQL | ratio |',
    '|---|---|---|---|',
    ('| ingest chunks/s | {0:N1} | {1:N1} | {2:N3} (goal >= 0.9) |' -f $folderRate, $pgRate, ($pgRate / $folderRate)),
    ('| search p50, warm cache | {0:N1} ms | {1:N1} ms | {2:N2}x (goal <= 1.2x) |' -f $folderSearch.P50, $pgSearch.P50, ($pgSearch.P50 / $folderSearch.P50)),
    ('| search p99, warm cache | {0:N1} ms | {1:N1} ms | {2:N2}x |' -f $folderSearch.P99, $pgSearch.P99, ($pgSearch.P99 / $folderSearch.P99)),
    '',
    'Keyword mode on the blind evaluation sets (tests/eval/<set>, test-half questions with an answer, documents ranked as in the Knowledge bench), ' +
    'the MiniLM folder knowledge base and its copy in PostgreSQL (Copy-CkKnowledge, no embedding again); hybrid search with default flags at that size:',
    '',
    '| set | chunks | questions | folder hit@5 / MRR@10 | PostgreSQL hit@5 / MRR@10 | hybrid p50 folder / PostgreSQL | hybrid p99 folder / PostgreSQL | copy to PostgreSQL |',
    '|---|---|---|---|---|---|---|---|'
) + @($evalRows | ForEach-Object {
    '| {0} | {1:N0} | {2} | {3:N3} / {4:N3} | {5:N3} / {6:N3} | {7:N1} / {8:N1} ms ({9:N2}x) | {10:N1} / {11:N1} ms | {12:N0} s |' -f $_.Set, $_.Chunks, $_.Questions,
        $_.Folder.Hit5, $_.Folder.Mrr10, $_.Postgres.Hit5, $_.Postgres.Mrr10, $_.FolderSearch.P50, $_.PostgresSearch.P50,
        ($_.PostgresSearch.P50 / $_.FolderSearch.P50), $_.FolderSearch.P99, $_.PostgresSearch.P99, $_.CopySeconds
}) + @(
    '',
    ('Catch-up: the first search after another machine (a second process with its own cache) committed {1:N0} chunks took {0:N0} ms more than a warm search (change log read, their vectors fetched and added to the local HNSW cache).' -f $catchUp, $addedChunks),
    ('Writers: 1 process {0:N1} chunks/s, 4 processes at once {1:N1} chunks/s aggregate ({2:N2}x; embedding is CPU-bound, so on {3} cores more writers share the same cores; commits queue on the knowledge base''s row lock only for the insert).' -f $one, $four, ($four / $one), [Environment]::ProcessorCount)
)
$lines | ForEach-Object { Write-Host $_ }
if (-not $NoDocs) { Set-BenchmarkSection 'postgres' $lines }
