# Shared by the bench scripts: the one writer of docs/benchmarks.md. Each script owns sections between markers.

# Replaces (or appends) one marked section of docs/benchmarks.md.
function Set-BenchmarkSection([string] $Marker, [string[]] $Lines) {
    $docs = Join-Path $PSScriptRoot '../../docs/benchmarks.md'
    $begin = "<!-- ${Marker}:begin -->"; $end = "<!-- ${Marker}:end -->"
    $section = (@($begin) + $Lines + @($end)) -join "`n"
    $content = Get-Content $docs -Raw
    $pattern = '(?s)' + [regex]::Escape($begin) + '.*' + [regex]::Escape($end)
    $content = if ($content -match $pattern) { [regex]::Replace($content, $pattern, { $section }) } else { $content.TrimEnd() + "`n`n" + $section + "`n" }
    Set-Content -LiteralPath $docs -Value $content -NoNewline
    Write-Host "The $Marker section of $docs is written."
}

# Writes one part of a section that several runs fill piece by piece (parts a run did not measure keep what an earlier
# run wrote): a part seen for the first time gets its markers at the end of the section, a missing section is added
# with its heading; then Set-BenchmarkSection writes the part.
function Set-BenchmarkPart([string] $Section, [string] $Heading, [string] $Part, [string[]] $Lines) {
    $docs = Join-Path $PSScriptRoot '../../docs/benchmarks.md'
    $content = Get-Content $docs -Raw
    $sectionEnd = "<!-- ${Section}:end -->"
    if (-not $content.Contains("<!-- ${Part}:begin -->")) {
        if (-not $content.Contains($sectionEnd)) { $content = $content.TrimEnd() + "`n`n<!-- ${Section}:begin -->`n$Heading`n`n$sectionEnd`n" }
        $at = $content.IndexOf($sectionEnd, [StringComparison]::Ordinal)
        $content = $content.Insert($at, "<!-- ${Part}:begin -->`n<!-- ${Part}:end -->`n`n")
        Set-Content -LiteralPath $docs -Value $content -NoNewline
    }
    Set-BenchmarkSection $Part $Lines
}
