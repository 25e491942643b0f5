<#
.SYNOPSIS
Builds the man-admin evaluation corpus: the English man pages of sections 5, 7 and 8 rendered to plain text.

.DESCRIPTION
Every real page (not a symlink, not a '.so' redirect) under /usr/share/man/man5, man7 and man8 whose roff source is
at most -MaxSourceChars long is rendered with groff at 80 columns, without hyphenation or justification (as `man --nh --nj`), and written as
<OutputPath>/man<section>/<page>.<section>.txt (e.g. man5/fstab.5.txt). The few giant reference pages above the limit
(directive indexes, every-variable lists) are left out to keep the corpus a few MB; everything else stays as
distractors. -ListOnly prints the relative file names without rendering (fast; used by the Pester shape test).
Only the files listed in corpus-files.txt beside this script are taken (the corpus of a fresh machine of this image,
recorded when the questions were written): packages installed later add pages that must not change the corpus.
A listed file that is missing here is a warning.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory, ParameterSetName = 'Build')][string] $OutputPath,
    [Parameter(Mandatory, ParameterSetName = 'List')][switch] $ListOnly,
    [string] $ManRoot = '/usr/share/man',
    # The files of a fresh machine of this image (see Select-CorpusManifestEntry); '' takes whatever is installed.
    [AllowEmptyString()][string] $ManifestPath = (Join-Path $PSScriptRoot 'corpus-files.txt'),
    [int] $MaxSourceChars = 120000,
    [int] $ThrottleLimit = 2
)
$ErrorActionPreference = 'Stop'
. (Join-Path $PSScriptRoot '../EvalCorpus.Common.ps1')

function Get-ManSource {
    foreach ($section in '5', '7', '8') {
        $dir = Join-Path $ManRoot "man$section"
        foreach ($file in Get-ChildItem -LiteralPath $dir -File | Sort-Object Name -CaseSensitive) {
            if ($file.LinkType) { continue }
            $roff = Read-MaybeGzipText $file.FullName
            if ($roff -match '^\s*\.so\s' -or $roff.Length -gt $MaxSourceChars) { continue }
            $page = $file.Name -replace '\.gz$', ''
            [pscustomobject]@{ Source = $file.FullName; RelativePath = "man$section/$page.txt" }
        }
    }
}

$pages = @(Select-CorpusManifestEntry @(Get-ManSource) $ManifestPath)
if ($ListOnly) { return $pages.RelativePath }

$started = Get-Date
$root = Initialize-CorpusOutput $OutputPath
$common = Join-Path $PSScriptRoot '../EvalCorpus.Common.ps1'
$pages | ForEach-Object -ThrottleLimit $ThrottleLimit -Parallel {
    . $using:common
    $env:LANG = 'C.UTF-8'
    [Console]::OutputEncoding = $OutputEncoding = [System.Text.UTF8Encoding]::new($false)
    # Ragged right, no hyphenation (as man-db's --nj --nh): groff 1.22 ignores -dAD/-rHY, so the page's own .ad/.hy
    # requests are disabled instead. -k: preconv for non-ASCII input, -t: tables, -P-cbou: no overstrike or underline.
    $text = ".ad l`n.nh`n.de ad`n..`n.de hy`n..`n" + (Read-MaybeGzipText $_.Source) |
        groff -k -t -man -Tutf8 -rLL=80n -P-cbou 2>$null | Out-String
    Write-CorpusFile -Root $using:root -RelativePath $_.RelativePath -Text $text
}
Write-CorpusSummary -Root $root -SetName 'man-admin' -Started $started
