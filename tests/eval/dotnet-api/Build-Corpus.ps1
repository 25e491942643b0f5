<#
.SYNOPSIS
Builds the dotnet-api evaluation corpus: one Markdown page per .NET type from the SDK's reference documentation.

.DESCRIPTION
Reads the XML documentation files beside the reference assemblies of the installed .NET SDK
(<dotnet root>/packs/Microsoft.NETCore.App.Ref/<newest version>/ref/net<major>.0/*.xml) and writes one page per
documented type whose namespace is in -Namespace: <OutputPath>/<namespace>/<full type name>.md (e.g.
System.IO/System.IO.File.md). The page title is the full type name, followed by the type's summary and remarks; every
member (constructor, property, method, field, event) is a '##' section with its summary, parameters, return value,
exceptions and remarks. -ListOnly prints the relative file names without writing (used by the Pester shape test).
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory, ParameterSetName = 'Build')][string] $OutputPath,
    [Parameter(Mandatory, ParameterSetName = 'List')][switch] $ListOnly,
    [string] $ReferencePath,
    # Namespaces a .NET application developer meets day to day; the rest (interop, compiler services, metadata
    # readers, SIMD intrinsics) would make the corpus large without adding questions a user asks.
    [string[]] $Namespace = @(
        'System', 'System.Buffers', 'System.Collections', 'System.Collections.Concurrent', 'System.Collections.Generic',
        'System.Collections.ObjectModel',
        'System.Collections.Specialized', 'System.Diagnostics', 'System.Diagnostics.Metrics',
        'System.Formats.Tar', 'System.Globalization', 'System.IO', 'System.IO.Compression', 'System.IO.Pipes', 'System.Linq',
        'System.Net', 'System.Net.Http', 'System.Net.Http.Headers', 'System.Net.Mail',
        'System.Net.Sockets', 'System.Net.WebSockets', 'System.Security.Cryptography',
        'System.Security.Cryptography.X509Certificates', 'System.Text', 'System.Text.Json', 'System.Text.Json.Nodes',
        'System.Text.Json.Serialization', 'System.Text.RegularExpressions', 'System.Threading', 'System.Threading.Channels',
        'System.Threading.Tasks', 'System.Timers', 'System.Xml.Linq')
)
$ErrorActionPreference = 'Stop'
. (Join-Path $PSScriptRoot '../EvalCorpus.Common.ps1')

function Get-ReferencePath {
    if ($ReferencePath) { return $ReferencePath }
    $dotnet = (Get-Command dotnet -CommandType Application | Select-Object -First 1).Source
    $root = [System.IO.Path]::GetDirectoryName((Get-Item $dotnet).ResolvedTarget ?? $dotnet)
    $pack = Get-ChildItem (Join-Path $root 'packs/Microsoft.NETCore.App.Ref') -Directory |
        Sort-Object { [version]($_.Name -replace '-.*$', '') } | Select-Object -Last 1
    Get-ChildItem (Join-Path $pack.FullName 'ref') -Directory | Sort-Object { [version]($_.Name -replace '^net', '') } |
        Select-Object -Last 1 -ExpandProperty FullName
}

$GenericArity = @{ '1' = '<T>'; '2' = '<T0,T1>'; '3' = '<T0,T1,T2>'; '4' = '<T0,T1,T2,T3>' }

function ConvertFrom-DocId {
    # "M:System.Collections.Generic.List`1.Add(`0)" -> "System.Collections.Generic.List<T>.Add(T0)": generic arity becomes
    # <T>/<T0,T1>, type parameters in argument lists become T<n> (type) or TM<n> (method), argument namespaces are dropped.
    param([string] $Id)
    $name = ($Id -replace '^[A-Z]:', '') -replace '#ctor', 'Constructor'
    $head, $arguments = $name, $null
    if ($name -match '^(?<head>[^(]*)\((?<arguments>.*)\)') { $head, $arguments = $Matches.head, $Matches.arguments }
    if ($head.Contains('`')) {
        foreach ($arity in $GenericArity.Keys) { $head = $head -replace "``{1,2}$arity(?!\d)", $GenericArity[$arity] }
        $head = $head -replace '`{1,2}(\d+)', '<T$1>'
    }
    if ($null -eq $arguments) { return $head }
    $arguments = $arguments -replace '``(\d+)', 'TM$1' -replace '`(\d+)', 'T$1' -replace '([A-Za-z_]\w*\.)+', '' -replace ',', ', '
    "$head($($arguments.Replace('{', '<').Replace('}', '>')))"
}

function Get-DocText {
    # XML doc markup to plain text with regexes over the element's inner XML (a node-by-node walk in script is ~10x
    # slower on the SDK's 30 MB of docs): cross-references become their short names, paragraphs blank lines,
    # list items '- ' lines.
    param([System.Xml.Linq.XElement] $Element)
    if (-not $Element) { return '' }
    $xml = [string]::Concat($Element.Nodes())
    $xml = $xml -replace '<see\s+langword="([^"]*)"\s*/>', '$1'
    $xml = $xml -replace '<see(?:also)?\s+(?:cref|href)="[^"]*"\s*>(.*?)</see(?:also)?>', '$1'
    $xml = $xml -replace '<see(?:also)?\s+cref="(?:[A-Z]:)?(?:[^"(]*\.)?([^".(]+)(?:\([^"]*\))?"\s*/>', '$1'
    $xml = $xml -replace '<see(?:also)?\s+href="([^"]*)"\s*/>', '$1'
    $xml = $xml -replace '<(?:type)?paramref\s+name="([^"]*)"\s*/>', '$1'
    $xml = $xml -replace '`{1,2}\d+', ''
    $xml = $xml -replace '\s+', ' '
    $xml = $xml -replace '</?(?:para|code|list|br)\b[^>]*>', "`n`n"
    $xml = $xml -replace '<item\b[^>]*>', "`n- " -replace '</term>', ': '
    $xml = [System.Net.WebUtility]::HtmlDecode(($xml -replace '<[^>]+>', ''))
    ($xml -replace '[ \t]+', ' ' -replace ' *\n *', "`n" -replace '\n{3,}', "`n`n" -replace '(?m)^- \n+', '- ').Trim()
}

function Format-MemberDoc {
    param([System.Xml.Linq.XElement] $Member)
    $lines = [System.Collections.Generic.List[string]]::new()
    $summary = Get-DocText $Member.Element('summary')
    if ($summary) { $lines.Add($summary) }
    foreach ($param in $Member.Elements('typeparam')) { $lines.Add("- Type parameter $($param.Attribute('name').Value): $(Get-DocText $param)") }
    foreach ($param in $Member.Elements('param')) { $lines.Add("- Parameter $($param.Attribute('name').Value): $(Get-DocText $param)") }
    foreach ($part in 'returns', 'value') {
        $text = Get-DocText $Member.Element($part)
        if ($text) { $lines.Add("- Returns: $text") }
    }
    foreach ($exception in $Member.Elements('exception')) {
        $type = (ConvertFrom-DocId $exception.Attribute('cref').Value) -replace '^([A-Za-z_]\w*\.)+', ''
        $lines.Add("- Throws $($type): $(Get-DocText $exception)")
    }
    $remarks = Get-DocText $Member.Element('remarks')
    if ($remarks) { $lines.Add("Remarks: $remarks") }
    $lines -join "`n`n"
}

function Get-DocumentedType {
    # Type ids are found with a regex (fast: -ListOnly needs nothing else); the first file that documents a type wins.
    $types = [System.Collections.Generic.SortedDictionary[string, object]]::new([StringComparer]::Ordinal)
    foreach ($file in Get-ChildItem (Get-ReferencePath) -Filter '*.xml' | Sort-Object Name -CaseSensitive) {
        foreach ($match in [regex]::Matches([System.IO.File]::ReadAllText($file.FullName), '<member name="T:([^"]+)"')) {
            $name = [System.Net.WebUtility]::HtmlDecode($match.Groups[1].Value)
            if (-not $types.ContainsKey($name)) {
                $types[$name] = [pscustomobject]@{ Name = $name; File = $file.FullName; Assembly = $file.BaseName; Element = $null; Members = [System.Collections.Generic.List[System.Xml.Linq.XElement]]::new() }
            }
        }
    }
    $wanted = [System.Collections.Generic.HashSet[string]]::new([string[]]$Namespace, [StringComparer]::Ordinal)
    foreach ($type in $types.Values) {
        # Nested types ("Outer.Inner") live in their outermost documented type's namespace.
        $top = $type.Name
        while ($true) {
            $cut = $top.LastIndexOf('.')
            if ($cut -lt 0 -or -not $types.ContainsKey($top.Substring(0, $cut))) { break }
            $top = $top.Substring(0, $cut)
        }
        $ns = $top.Substring(0, [math]::Max(0, $top.LastIndexOf('.')))
        if (-not $wanted.Contains($ns)) { continue }
        $fileName = ($type.Name -replace '`(\d)', '-$1') + '.md'
        $type | Add-Member -NotePropertyMembers @{ Namespace = $ns; RelativePath = "$ns/$fileName" } -PassThru
    }
}

function Add-MemberDoc {
    # Attaches each selected type's own <member> element and its members' elements (declaring type = the longest
    # documented type name that prefixes the member name, so members of nested types land on the nested type).
    param([object[]] $Pages)
    $byName = @{}
    foreach ($page in $Pages) { $byName[$page.Name] = $page }
    foreach ($path in $Pages.File | Sort-Object -Unique -CaseSensitive) {
        $doc = [System.Xml.Linq.XDocument]::Load($path)
        foreach ($member in $doc.Root.Element('members').Elements('member')) {
            $id = $member.Attribute('name').Value
            if ($id.StartsWith('T:')) {
                $page = $byName[$id.Substring(2)]
                if ($page -and $page.File -eq $path) { $page.Element = $member }
                continue
            }
            $memberPath = ($id.Substring(2) -replace '\(.*$', '') -replace '``\d+$', ''
            for ($cut = $memberPath.LastIndexOf('.'); $cut -gt 0; $cut = $memberPath.LastIndexOf('.', $cut - 1)) {
                $owner = $byName[$memberPath.Substring(0, $cut)]
                if ($owner) { if ($owner.File -eq $path) { $owner.Members.Add($member) }; break }
            }
        }
    }
}

$pages = @(Get-DocumentedType)
if (-not $pages) { throw "No documented types in the namespaces '$($Namespace -join "', '")' under $(Get-ReferencePath)." }
if ($ListOnly) { return $pages.RelativePath }
Add-MemberDoc $pages

$started = Get-Date
$root = Initialize-CorpusOutput $OutputPath
foreach ($page in $pages) {
    $text = [System.Text.StringBuilder]::new()
    [void]$text.Append("# $(ConvertFrom-DocId "T:$($page.Name)")`n`nNamespace: $($page.Namespace). Assembly: $($page.Assembly).`n`n")
    [void]$text.Append((Format-MemberDoc $page.Element)).Append("`n`n")
    $typeTitle = ConvertFrom-DocId "T:$($page.Name)"
    $shortName = ($page.Name -replace '^.*\.', '') -replace '`\d+$', ''
    # Overloads documented with the same text share one section (their signatures joined in the heading): the SDK
    # repeats identical docs for every overload, which would only multiply near-duplicate passages.
    $sections = [System.Collections.Generic.List[object]]::new()
    foreach ($member in $page.Members) {
        $id = $member.Attribute('name').Value
        $title = ConvertFrom-DocId $id
        if ($title.StartsWith("$typeTitle.", [StringComparison]::Ordinal)) { $title = $title.Substring($typeTitle.Length + 1) }
        $kind = @{ M = 'Method'; P = 'Property'; F = 'Field'; E = 'Event' }[$id.Substring(0, 1)]
        if ($title -like 'Constructor*') { $kind = 'Constructor'; $title = $shortName + $title.Substring('Constructor'.Length) }
        $body = Format-MemberDoc $member
        $last = if ($sections.Count) { $sections[$sections.Count - 1] } else { $null }
        if ($last -and $last.Kind -eq $kind -and $last.Body -eq $body) { $last.Titles.Add($title); continue }
        $sections.Add([pscustomobject]@{ Kind = $kind; Titles = [System.Collections.Generic.List[string]]@($title); Body = $body })
    }
    foreach ($section in $sections) {
        [void]$text.Append("## $($section.Kind) $($section.Titles -join ' / ')`n`n").Append($section.Body).Append("`n`n")
    }
    Write-CorpusFile -Root $root -RelativePath $page.RelativePath -Text $text.ToString()
}
Write-CorpusSummary -Root $root -SetName 'dotnet-api' -Started $started
