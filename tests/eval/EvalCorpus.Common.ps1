# Shared by the corpus builders under tests/eval/<set>/Build-Corpus.ps1: deterministic file output.
# Every corpus file is UTF-8 without BOM, LF line ends, no trailing blanks, so two builds on machines of the same
# image give byte-identical corpora.

Set-StrictMode -Version Latest

function Initialize-CorpusOutput {
    param([Parameter(Mandatory)][string] $OutputPath)
    $full = [System.IO.Path]::GetFullPath($OutputPath, (Get-Location).ProviderPath)
    [System.IO.Directory]::CreateDirectory($full) | Out-Null
    $full
}

function ConvertTo-CorpusText {
    param([Parameter(Mandatory)][AllowEmptyString()][string] $Text)
    $lines = $Text.Replace("`r`n", "`n").Replace("`r", "`n") -split "`n" | ForEach-Object { $_.TrimEnd() }
    # Runs of blank lines collapse to one: renderers and tag stripping leave many.
    ((($lines -join "`n") -replace "`n{3,}", "`n`n").Trim()) + "`n"
}

function Write-CorpusFile {
    param(
        [Parameter(Mandatory)][string] $Root,
        [Parameter(Mandatory)][string] $RelativePath,
        [Parameter(Mandatory)][AllowEmptyString()][string] $Text
    )
    $path = Join-Path $Root $RelativePath
    [System.IO.Directory]::CreateDirectory([System.IO.Path]::GetDirectoryName($path)) | Out-Null
    [System.IO.File]::WriteAllText($path, (ConvertTo-CorpusText $Text), [System.Text.UTF8Encoding]::new($false))
}

function Read-MaybeGzipText {
    # Debian compresses most documentation; read plain and .gz files alike as UTF-8.
    param([Parameter(Mandatory)][string] $Path)
    if ($Path.EndsWith('.gz', [StringComparison]::Ordinal)) {
        $file = [System.IO.File]::OpenRead($Path)
        try {
            $gzip = [System.IO.Compression.GZipStream]::new($file, [System.IO.Compression.CompressionMode]::Decompress)
            $reader = [System.IO.StreamReader]::new($gzip, [System.Text.Encoding]::UTF8)
            try { return $reader.ReadToEnd() } finally { $reader.Dispose() }
        } finally { $file.Dispose() }
    }
    [System.IO.File]::ReadAllText($Path, [System.Text.Encoding]::UTF8)
}

function Write-CorpusSummary {
    param([Parameter(Mandatory)][string] $Root, [Parameter(Mandatory)][string] $SetName, [Parameter(Mandatory)][datetime] $Started)
    $files = @(Get-ChildItem -LiteralPath $Root -Recurse -File)
    [pscustomobject]@{
        Set     = $SetName
        Path    = $Root
        Files   = $files.Count
        MB      = [math]::Round((($files | Measure-Object Length -Sum).Sum) / 1MB, 2)
        Seconds = [math]::Round(((Get-Date) - $Started).TotalSeconds, 1)
    }
}

function Select-CorpusManifestEntry {
    # Keeps only the entries whose RelativePath is listed in the set's manifest: the files a fresh machine of this
    # image has, so packages installed later (which add man pages and /usr/share/doc files) do not change the corpus.
    # An empty -ManifestPath keeps everything (builders run on other inputs, e.g. in tests).
    param([object[]] $Entry, [AllowEmptyString()][string] $ManifestPath)
    if (-not $ManifestPath) { return $Entry }
    $listed = [System.Collections.Generic.HashSet[string]]::new([string[]]@(Get-Content -LiteralPath $ManifestPath), [StringComparer]::Ordinal)
    $kept = @($Entry | Where-Object { $listed.Remove($_.RelativePath) })
    if ($listed.Count) {
        $sample = ($listed | Sort-Object | Select-Object -First 5) -join ', '
        Write-Warning "$($listed.Count) file(s) of $ManifestPath are not on this machine: $sample$(if ($listed.Count -gt 5) { ', ...' })"
    }
    $kept
}
