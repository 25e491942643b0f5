<#
.SYNOPSIS
    Ingestion scaling benchmark: a large single-section text file against many small files. Writes the Ingestion
    section of docs/benchmarks.md.
.DESCRIPTION
    Material: the machine's man pages (man | col -b), converted at run time and never committed. The small files are
    the pages themselves; the large file is those pages concatenated (no headings: one plain-text section) until it
    reaches -SizeMB. Two measurements:
    - front end: reading (streamed) and chunking with the MiniLM tokenizer at the default chunk settings, -SizeMB file
      against all small files, chunks/s and working-set growth;
    - end to end: KnowledgeBase.AddFile with MiniLM embedding and SQLite, a -EndToEndMB single-section file against
      small files of about the same total size (embedding dominates, so this is bounded to minutes).
    Run it with nice: it is CPU-bound for several minutes.
#>
[CmdletBinding()]
param(
    [string] $WorkDirectory = (Join-Path ([IO.Path]::GetTempPath()) 'ckllm-ingestion-bench'),
    [int] $SizeMB = 50,
    [double] $EndToEndMB = 0.5,
    [switch] $NoDocs
)
$ErrorActionPreference = 'Stop'
$project = Join-Path $PSScriptRoot 'IngestionBench/IngestionBench.csproj'

$pages = @'
ls cp mv rm mkdir chmod chown touch cat head tail less grep sed awk cut sort uniq wc tr tee find xargs tar gzip ps kill
df du free mount date env printf test expr stat file ssh scp wget git make diff patch split od dd nice nohup timeout
watch stty journalctl systemctl ip openssl ssh-keygen bc seq column iconv locale apt dpkg flock pkill install mktemp
truncate shred taskset logger strace perl python3 ldd readelf envsubst
'@ -split '\s+' | Where-Object { $_ }

New-Item -ItemType Directory -Force $WorkDirectory | Out-Null
$small = Join-Path $WorkDirectory 'pages'
$e2eSmall = Join-Path $WorkDirectory 'e2e-pages'
Remove-Item -Recurse -Force $small, $e2eSmall -ErrorAction Ignore
New-Item -ItemType Directory $small, $e2eSmall | Out-Null

Write-Host "==> convert $($pages.Count) man pages" -ForegroundColor Cyan
$env:MANWIDTH = '80'
foreach ($page in $pages) {
    $text = & bash -c "man '$page' 2>/dev/null | col -b"
    if ($LASTEXITCODE -eq 0 -and $text) { Set-Content -LiteralPath (Join-Path $small "$page.txt") -Value $text }
}
$files = Get-ChildItem $small -File | Sort-Object Name
if ($files.Count -lt 10) { throw "Only $($files.Count) man pages could be converted; install man-db and manpages." }

function New-Concatenation([string] $Path, [double] $Megabytes) {
    $target = [long]($Megabytes * 1MB)
    $out = [IO.File]::Create($Path)
    try {
        while ($out.Length -lt $target) {
            foreach ($f in $files) {
                $bytes = [IO.File]::ReadAllBytes($f.FullName)
                $out.Write($bytes, 0, [Math]::Min($bytes.Length, [int]($target - $out.Length)))
                if ($out.Length -ge $target) { break }
            }
        }
    }
    finally { $out.Dispose() }
}
$big = Join-Path $WorkDirectory "single-section-$SizeMB-MB.txt"
$e2eBig = Join-Path $WorkDirectory 'single-section-e2e.txt'
New-Concatenation $big $SizeMB
New-Concatenation $e2eBig $EndToEndMB
$total = 0
foreach ($f in $files) {
    if ($total -ge $EndToEndMB * 1MB) { break }
    Copy-Item $f.FullName $e2eSmall
    $total += $f.Length
}

Write-Host '==> build IngestionBench' -ForegroundColor Cyan
dotnet build $project -c Release --nologo -v quiet | Out-Null
if ($LASTEXITCODE) { throw 'IngestionBench build failed' }
$exe = Join-Path $PSScriptRoot 'IngestionBench/bin/Release/net10.0/linux-x64/IngestionBench.dll'
$out = Join-Path $WorkDirectory 'ingestion.json'
Write-Host '==> measure' -ForegroundColor Cyan
& nice -n 10 dotnet $exe $small $big $e2eSmall $e2eBig $WorkDirectory $out
if ($LASTEXITCODE) { throw 'ingestion benchmark failed' }
$results = Get-Content $out -Raw | ConvertFrom-Json
Remove-Item -Recurse -Force (Join-Path $WorkDirectory 'kb-*') -ErrorAction Ignore

if ($NoDocs) { return $results }
$ratio = { param($pair) [Math]::Round($pair[1].ChunksPerSecond / $pair[0].ChunksPerSecond, 2) }
$lines = @(
    '## Ingestion scaling'
    ''
    "Written by tests/bench/Ingestion.Bench.ps1 on $(Get-Date -Format 'yyyy-MM-dd') ($($results.ProcessorCount) cores, run with nice -n 10 on a shared machine)."
    "Material: $($files.Count) man pages as small files; the same pages concatenated into one heading-less text file"
    "(a single section). Default chunk settings, MiniLM tokenizer and embedder ($($results.Embedder))."
    ''
    '| stage | input | MB | chunks | seconds | chunks/s | working set growth (MB) |'
    '|---|---|---|---|---|---|---|'
)
foreach ($r in $results.FrontEnd) { $lines += "| read + chunk | $($r.Label) | $($r.Megabytes) | $($r.Chunks) | $($r.Seconds) | $($r.ChunksPerSecond) | $($r.WorkingSetGrowthMB) |" }
foreach ($r in $results.EndToEnd) { $lines += "| end to end (embed + store) | $($r.Label) | $($r.Megabytes) | $($r.Chunks) | $($r.Seconds) | $($r.ChunksPerSecond) | |" }
$lines += @(
    ''
    "Large file / small files, chunks/s: read + chunk $(& $ratio $results.FrontEnd)x, end to end $(& $ratio $results.EndToEnd)x."
)
. (Join-Path $PSScriptRoot 'BenchDocs.ps1')
Set-BenchmarkSection 'ingestion' $lines
$results
