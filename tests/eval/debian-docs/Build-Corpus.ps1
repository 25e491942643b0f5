<#
.SYNOPSIS
Builds the debian-docs evaluation corpus: the HTML and README files Debian packages install under /usr/share/doc.

.DESCRIPTION
Takes every regular file under /usr/share/doc (packages whose doc folder is a symlink to another package's are skipped,
so nothing is read twice) that is an HTML page (*.html, *.htm) or a README (README, README.Debian, README.md, ...,
plain or .gz). HTML is converted to Markdown-like text (title and headings kept as '#' lines, list items as '- ',
navigation bars, page tables of contents and change-log boxes dropped); READMEs are decompressed as they are.
Output: <OutputPath>/<package>/<path>, with '.gz' dropped, '.html'/'.htm' replaced by '.md' and '.txt' appended to
names that have no .md/.txt extension (e.g. nodejs/api/dns.md, gzip/README.txt, coreutils/README.Debian.txt).
Files larger than -MaxSourceBytes (the single-page concatenations such as nodejs/api/all.html) are left out.
-ListOnly prints the relative file names without converting anything (used by the Pester shape test).
Only the files listed in corpus-files.txt beside this script are taken (the corpus of a fresh machine of this image,
recorded when the questions were written): packages installed later add files that must not change the corpus.
A listed file that is missing here is a warning.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory, ParameterSetName = 'Build')][string] $OutputPath,
    [Parameter(Mandatory, ParameterSetName = 'List')][switch] $ListOnly,
    [string] $DocRoot = '/usr/share/doc',
    # The files of a fresh machine of this image (see Select-CorpusManifestEntry); '' takes whatever is installed.
    [AllowEmptyString()][string] $ManifestPath = (Join-Path $PSScriptRoot 'corpus-files.txt'),
    [long] $MaxSourceBytes = 1MB
)
$ErrorActionPreference = 'Stop'
. (Join-Path $PSScriptRoot '../EvalCorpus.Common.ps1')

function Get-DocSource {
    $seen = [System.Collections.Generic.HashSet[string]]::new([StringComparer]::OrdinalIgnoreCase)
    foreach ($package in Get-ChildItem -LiteralPath $DocRoot -Directory | Sort-Object Name -CaseSensitive) {
        if ($package.LinkType) { continue }
        $files = Get-ChildItem -LiteralPath $package.FullName -File -Recurse |
            Where-Object { -not $_.LinkType -and $_.Length -le $MaxSourceBytes -and ($_.Name -match '\.html?$' -or $_.Name -like 'README*') } |
            Sort-Object FullName -CaseSensitive
        foreach ($file in $files) {
            $relative = [System.IO.Path]::GetRelativePath($DocRoot, $file.FullName).Replace('\', '/') -replace '\.gz$', ''
            $isHtml = $relative -match '\.html?$'
            $relative = $relative -replace '\.html?$', '.md'
            if ($relative -notmatch '\.(md|txt)$') { $relative += '.txt' }
            if (-not $seen.Add($relative)) { continue }
            [pscustomobject]@{ Source = $file.FullName; RelativePath = $relative; IsHtml = $isHtml }
        }
    }
}

function ConvertFrom-DocHtml {
    param([Parameter(Mandatory)][string] $Html)
    $options = [System.Text.RegularExpressions.RegexOptions]'IgnoreCase, Singleline'
    $title = [regex]::Match($Html, '<title[^>]*>(.*?)</title>', $options).Groups[1].Value
    $body = $Html
    # Pages that mark their main content (Node.js: id="apicontent", HTML5: <main>) are cut to it: the rest is site chrome.
    $content = [regex]::Match($Html, '<main\b|<div[^>]*id="apicontent"', $options)
    if ($content.Success) { $body = $Html.Substring($content.Index) }
    # Chrome shared by every page of a manual (navigation, tables of contents, change logs) is dropped: it would make
    # all pages of one package look alike.
    foreach ($pattern in '<head\b.*?</head>', '<script\b.*?</script>', '<style\b.*?</style>', '<header\b.*?</header>',
        '<nav\b.*?</nav>', '<details[^>]*(navigation|changelog)[^>]*>.*?</details>', '<div class="nav(header|footer)">.*?</div>',
        '<!--.*?-->') {
        $body = [regex]::Replace($body, $pattern, ' ', $options)
    }
    $body = [regex]::Replace($body, '<h([1-6])[^>]*>(.*?)</h\1>', { param($m) "`n`n" + ('#' * [int]$m.Groups[1].Value) + ' ' + ($m.Groups[2].Value -replace '\s+', ' ') + "`n`n" }, $options)
    $body = [regex]::Replace($body, '<li[^>]*>', "`n- ", $options)
    $body = [regex]::Replace($body, '<(br|/p|p|/div|div|/tr|tr|/pre|pre|/dt|dd|/dd|/li|/ul|/ol|/table|blockquote|/blockquote)\b[^>]*>', "`n", $options)
    $body = [regex]::Replace($body, '<(td|th)\b[^>]*>', ' | ', $options)
    $body = [regex]::Replace($body, '<[^>]+>', '', $options)
    $text = [System.Net.WebUtility]::HtmlDecode($body) -replace '[ \t\u00a0]+', ' '
    $title = [System.Net.WebUtility]::HtmlDecode(($title -replace '<[^>]+>', '')).Trim() -replace '\s+', ' '
    if ($title) { "# $title`n`n$text" } else { $text }
}

$docs = @(Select-CorpusManifestEntry @(Get-DocSource) $ManifestPath)
if ($ListOnly) { return $docs.RelativePath }

$started = Get-Date
$root = Initialize-CorpusOutput $OutputPath
foreach ($doc in $docs) {
    $text = Read-MaybeGzipText $doc.Source
    if ($doc.IsHtml) { $text = ConvertFrom-DocHtml $text }
    Write-CorpusFile -Root $root -RelativePath $doc.RelativePath -Text $text
}
Write-CorpusSummary -Root $root -SetName 'debian-docs' -Started $started
