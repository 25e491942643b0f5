#requires -Version 7.4
<#
.SYNOPSIS
    Generates the module's MAML help (en-US/CkLlm.dll-Help.xml) from docs/cmdlets/*.md.
.DESCRIPTION
    platyPS is not served from the package feed here, so this script does its job: prose (synopsis, description,
    examples, parameter descriptions, inputs, outputs, notes) comes from the markdown pages, and everything the
    cmdlet itself knows (syntax, parameter types, mandatory, position, pipeline input, aliases) comes from the built
    module, so the two cannot drift apart. Run it in a child process: it imports the module it documents.
.EXAMPLE
    ./docs/cmdlets/New-CkHelp.ps1 -ModulePath out/CkLlm/CkLlm.psd1 -DocsPath docs/cmdlets -OutputPath out/CkLlm/en-US/CkLlm.dll-Help.xml
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $DocsPath,
    [Parameter(Mandatory)] [string] $OutputPath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$CommonParameters = [System.Management.Automation.Internal.CommonParameters].GetProperties().Name +
    [System.Management.Automation.Internal.ShouldProcessParameters].GetProperties().Name

# Splits a markdown page into its '## SECTION' bodies; '### Sub' headings inside a section become entries.
function Read-CmdletPage([string] $File) {
    $sections = [ordered]@{}
    $current = $null
    foreach ($line in Get-Content $File) {
        if ($line -match '^## (.+?)\s*$') { $current = $Matches[1].Trim().ToUpperInvariant(); $sections[$current] = [Collections.Generic.List[string]]::new(); continue }
        if ($null -ne $current) { $sections[$current].Add($line) }
    }
    $sections
}

function Split-Entries([Collections.Generic.List[string]] $Lines) {
    $entries = [Collections.Generic.List[object]]::new()
    $entry = $null
    foreach ($line in $Lines) {
        if ($line -match '^### (.+?)\s*$') { $entry = [pscustomobject]@{ Title = $Matches[1].Trim(); Lines = [Collections.Generic.List[string]]::new() }; $entries.Add($entry); continue }
        if ($null -ne $entry) { $entry.Lines.Add($line) }
    }
    $entries
}

# Paragraphs: blank-line separated, code fences kept whole.
function Get-Paragraphs([string[]] $Lines) {
    $text = ($Lines -join "`n").Trim()
    if (-not $text) { return @() }
    # Soft-wrapped prose becomes one line; code, lists and tables keep their line breaks.
    @($text -split "\n\s*\n" | ForEach-Object { $_.Trim() } | Where-Object { $_ } | ForEach-Object {
        if ($_ -match '(?m)^\s*(```|[-*|]\s|\d+\.\s)') { $_ } else { $_ -replace '\s*\n\s*', ' ' }
    })
}

$module = Import-Module $ModulePath -PassThru -Force
$xml = [Xml.XmlDocument]::new()
$nsMaml = 'http://schemas.microsoft.com/maml/2004/10'
$nsCommand = 'http://schemas.microsoft.com/maml/dev/command/2004/10'
$nsDev = 'http://schemas.microsoft.com/maml/dev/2004/10'
$root = $xml.AppendChild($xml.CreateElement('helpItems', 'http://msh'))
$root.SetAttribute('schema', 'maml')

function Add-Element($Parent, [string] $Name, [string] $Text) {
    $prefix, $local = $Name -split ':'
    $ns = switch ($prefix) { 'maml' { $nsMaml } 'command' { $nsCommand } 'dev' { $nsDev } }
    $element = $xml.CreateElement($prefix, $local, $ns)
    if ($PSBoundParameters.ContainsKey('Text')) { $element.InnerText = $Text }
    $Parent.AppendChild($element)
}

function Add-Description($Parent, [string[]] $Paragraphs, [string] $Name = 'maml:description') {
    $description = Add-Element $Parent $Name
    foreach ($p in $Paragraphs) { Add-Element $description 'maml:para' $p | Out-Null }
    $description
}

function Get-PipelineInput($ParameterInfo) {
    $sources = @()
    if ($ParameterInfo.ValueFromPipeline) { $sources += 'ByValue' }
    if ($ParameterInfo.ValueFromPipelineByPropertyName) { $sources += 'ByPropertyName' }
    if ($sources) { "True ($($sources -join ', '))" } else { 'False' }
}

$missing = @()
foreach ($command in Get-Command -Module $module.Name -CommandType Cmdlet | Sort-Object Name) {
    $page = Join-Path $DocsPath "$($command.Name).md"
    if (-not (Test-Path $page)) { $missing += $command.Name; continue }
    $doc = Read-CmdletPage $page
    $section = { param($n) if ($doc.Contains($n)) { $doc[$n] } else { [Collections.Generic.List[string]]::new() } }

    $node = Add-Element $root 'command:command'
    $details = Add-Element $node 'command:details'
    Add-Element $details 'command:name' $command.Name | Out-Null
    Add-Element $details 'command:verb' $command.Verb | Out-Null
    Add-Element $details 'command:noun' $command.Noun | Out-Null
    Add-Description $details @((Get-Paragraphs (& $section 'SYNOPSIS')) -join ' ') | Out-Null
    Add-Description $node (Get-Paragraphs (& $section 'DESCRIPTION')) | Out-Null

    $parameterDocs = @{}
    foreach ($entry in Split-Entries (& $section 'PARAMETERS')) { $parameterDocs[$entry.Title.TrimStart('-')] = Get-Paragraphs $entry.Lines }

    $syntax = Add-Element $node 'command:syntax'
    foreach ($set in $command.ParameterSets) {
        $item = Add-Element $syntax 'command:syntaxItem'
        Add-Element $item 'maml:name' $command.Name | Out-Null
        foreach ($p in $set.Parameters | Where-Object Name -NotIn $CommonParameters) {
            $pn = Add-Element $item 'command:parameter'
            $pn.SetAttribute('required', "$($p.IsMandatory)".ToLowerInvariant())
            $pn.SetAttribute('position', $(if ($p.Position -ge 0) { "$($p.Position)" } else { 'named' }))
            $pn.SetAttribute('pipelineInput', (Get-PipelineInput $p))
            Add-Element $pn 'maml:name' $p.Name | Out-Null
            if ($p.ParameterType -ne [switch]) { Add-Element $pn 'command:parameterValue' $p.ParameterType.Name | Out-Null }
        }
    }

    $parameters = Add-Element $node 'command:parameters'
    foreach ($name in $command.Parameters.Keys | Where-Object { $_ -notin $CommonParameters }) {
        $info = $command.Parameters[$name]
        $first = $info.ParameterSets.Values | Select-Object -First 1
        $pn = Add-Element $parameters 'command:parameter'
        $pn.SetAttribute('required', "$(@($info.ParameterSets.Values | Where-Object IsMandatory).Count -gt 0)".ToLowerInvariant())
        $pn.SetAttribute('position', $(if ($first.Position -ge 0) { "$($first.Position)" } else { 'named' }))
        $pn.SetAttribute('pipelineInput', (Get-PipelineInput $first))
        $pn.SetAttribute('globbing', "$([bool]($info.Attributes | Where-Object { $_ -is [System.Management.Automation.SupportsWildcardsAttribute] }))".ToLowerInvariant())
        $pn.SetAttribute('aliases', $(if ($info.Aliases.Count) { $info.Aliases -join ', ' } else { 'none' }))
        Add-Element $pn 'maml:name' $name | Out-Null
        $text = if ($parameterDocs.Contains($name)) { $parameterDocs[$name] } else { @() }
        Add-Description $pn $text | Out-Null
        if ($info.ParameterType -ne [switch]) { Add-Element $pn 'command:parameterValue' $info.ParameterType.Name | Out-Null }
        $type = Add-Element $pn 'dev:type'
        Add-Element $type 'maml:name' $info.ParameterType.FullName | Out-Null
    }

    foreach ($kind in @(@{ Section = 'INPUTS'; List = 'command:inputTypes'; Item = 'command:inputType' },
                        @{ Section = 'OUTPUTS'; List = 'command:returnValues'; Item = 'command:returnValue' })) {
        $list = Add-Element $node $kind.List
        foreach ($entry in Split-Entries (& $section $kind.Section)) {
            $item = Add-Element $list $kind.Item
            $type = Add-Element $item 'dev:type'
            Add-Element $type 'maml:name' $entry.Title | Out-Null
            Add-Description $item (Get-Paragraphs $entry.Lines) | Out-Null
        }
    }

    $notes = Get-Paragraphs (& $section 'NOTES')
    if ($notes) { Add-Description (Add-Element $node 'maml:alertSet') $notes 'maml:alert' | Out-Null }

    $examples = Add-Element $node 'command:examples'
    foreach ($entry in Split-Entries (& $section 'EXAMPLES')) {
        $text = $entry.Lines -join "`n"
        $code = [regex]::Matches($text, '```(?:powershell)?\s*\n(.*?)\n```', 'Singleline') | ForEach-Object { $_.Groups[1].Value.Trim() }
        $remarks = ([regex]::Replace($text, '```.*?```', '', 'Singleline') -split "`n")
        $example = Add-Element $examples 'command:example'
        Add-Element $example 'maml:title' "--------- $($entry.Title) ---------" | Out-Null
        Add-Element $example 'dev:code' ($code -join "`n`n") | Out-Null
        Add-Description $example (Get-Paragraphs $remarks) 'dev:remarks' | Out-Null
    }
}

if ($missing) { Write-Warning "No help page in $DocsPath for: $($missing -join ', ')" }
New-Item -ItemType Directory -Force (Split-Path $OutputPath) | Out-Null
$xml.Save($OutputPath)
Write-Host "Help written to $OutputPath"
