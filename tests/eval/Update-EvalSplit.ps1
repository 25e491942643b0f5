<#
.SYNOPSIS
Assigns the dev/test split of an evaluation question set deterministically, stratified by question kind.

.DESCRIPTION
Within each kind (paraphrase, multi-sentence, no-answer) the rows are ordered by the SHA-256 of their question text
and alternately assigned to dev and test, so each half gets the same mix of kinds and the assignment never depends on
row order or on the machine. Rewrites the CSV in place with the columns Question, ExpectedSource, kind, split.
#>
[CmdletBinding(SupportsShouldProcess)]
param([Parameter(Mandatory)][string] $Path)
$ErrorActionPreference = 'Stop'

function Get-QuestionHash([string] $Text) {
    [Convert]::ToHexString([System.Security.Cryptography.SHA256]::HashData([System.Text.Encoding]::UTF8.GetBytes($Text)))
}

$rows = @(Import-Csv -LiteralPath $Path)
$split = @{}
foreach ($group in $rows | Group-Object kind) {
    $i = 0
    foreach ($row in $group.Group | Sort-Object { Get-QuestionHash $_.Question }) {
        $split[$row.Question] = if ($i++ % 2 -eq 0) { 'dev' } else { 'test' }
    }
}
$out = foreach ($row in $rows) {
    [pscustomobject]@{ Question = $row.Question; ExpectedSource = $row.ExpectedSource; kind = $row.kind; split = $split[$row.Question] }
}
if ($PSCmdlet.ShouldProcess($Path, 'Write dev/test split')) {
    $out | Export-Csv -LiteralPath $Path -NoTypeInformation -UseQuotes AsNeeded -Encoding utf8NoBOM
}
