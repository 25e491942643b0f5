# Shared by the bench scripts: replaces (or appends) one marked section of docs/benchmarks.md.
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
