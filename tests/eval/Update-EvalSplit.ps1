<#
.SYNOPSIS
Assigns the dev/test split of new rows in an evaluation question set, deterministically and stratified by kind.

.DESCRIPTION
Rows that already have a split keep it: once a set is in use, editing or rewording a question must never move a
test question into dev (or back), or tuning on dev would have seen test questions. Rows with an empty split (new
questions) are ordered by the SHA-256 of their question text and each goes to whichever half of its kind
(paraphrase, multi-sentence, no-answer) is smaller at that point, dev on a tie. A set written from scratch (all splits
empty) therefore alternates dev/test in hash order within every kind. Rewrites the CSV in place with the columns
Question, ExpectedSource, kind, split.
#>
[CmdletBinding(SupportsShouldProcess)]
param([Parameter(Mandatory)][string] $Path)
$ErrorActionPreference = 'Stop'

function Get-QuestionHash([string] $Text) {
    [Convert]::ToHexString([System.Security.Cryptography.SHA256]::HashData([System.Text.Encoding]::UTF8.GetBytes($Text)))
}

$rows = @(Import-Csv -LiteralPath $Path | ForEach-Object {
        [pscustomobject]@{ Question = $_.Question; ExpectedSource = $_.ExpectedSource; kind = $_.kind; split = "$($_.split)" }
    })
foreach ($group in $rows | Group-Object kind) {
    $dev = @($group.Group | Where-Object split -eq 'dev').Count
    $test = @($group.Group | Where-Object split -eq 'test').Count
    foreach ($row in $group.Group | Where-Object { -not $_.split } | Sort-Object { Get-QuestionHash $_.Question }) {
        if ($dev -le $test) { $row.split = 'dev'; $dev++ } else { $row.split = 'test'; $test++ }
    }
}
if ($PSCmdlet.ShouldProcess($Path, 'Write dev/test split')) {
    $rows | Export-Csv -LiteralPath $Path -NoTypeInformation -UseQuotes AsNeeded -Encoding utf8NoBOM
}
