#requires -Version 7.4
<#
.SYNOPSIS
    Chat benchmark: time to the first token of turn N of a growing conversation, with and without the chat's kept
    llama.cpp state.
.DESCRIPTION
    Generates a model (Medium preset, ChatML template), then holds the same conversation twice per round through the
    cmdlets: New-CkChat (state kept between turns: a turn evaluates only what is new) and New-CkChat -NoCache (every
    turn re-evaluates the whole history in a fresh context, as separate completions would). The user messages are the
    paragraphs of /usr/share/common-licenses/GPL-3 (text this project did not write), each followed by a short
    request; replies are greedy. The order of the two alternates between rounds. Reports the median time to the first
    token of the last turn, its prompt tokens and how many were evaluated, and checks that both replies are the same
    text. Writes the Chat section of docs/benchmarks.md (every number and sentence in it comes from this script)
    unless -NoDocs.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [int] $Turns = 10,
    [int] $Rounds = 3,
    [int] $MaxTokens = 32,
    [string] $Preset = 'Medium',
    [int] $ContextSize = 4096,
    [int] $Threads = [Environment]::ProcessorCount,
    [switch] $NoDocs
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
. (Join-Path $PSScriptRoot 'BenchDocs.ps1')

$source = '/usr/share/common-licenses/GPL-3'
if (-not (Test-Path $source)) { throw "$source is missing: the benchmark's conversation is made of its paragraphs." }
# Paragraphs of 40 words or more, so every turn adds a comparable amount of text.
$paragraphs = @((Get-Content $source -Raw) -split '\n\s*\n' | ForEach-Object { ($_ -replace '\s+', ' ').Trim() } |
    Where-Object { ($_ -split ' ').Count -ge 40 })
if ($paragraphs.Count -lt $Turns) { throw "Only $($paragraphs.Count) paragraphs in $source; $Turns turns need as many." }
$messages = for ($i = 0; $i -lt $Turns; $i++) { "$($paragraphs[$i])`n`nWhat does this paragraph say, in one sentence?" }

Import-Module $ModulePath -Force
$work = Join-Path ([IO.Path]::GetTempPath()) "ckllm-chat-bench-$([guid]::NewGuid().ToString('N'))"
New-Item -ItemType Directory -Path $work | Out-Null
try {
    $file = Join-Path $work "$($Preset.ToLowerInvariant())-chat.gguf"
    Write-Host "==> New-CkModel -Preset $Preset -ChatTemplate ChatML" -ForegroundColor Cyan
    $summary = New-CkModel -Path $file -Preset $Preset -Seed 1 -ChatTemplate ChatML
    $model = Import-CkModel $file -ContextSize $ContextSize -Threads $Threads
    $null = Invoke-CkCompletion 'warm up' -MaxTokens 4 -Temperature 0 -NoCache

    function Invoke-Conversation([bool] $KeepState) {
        $chat = if ($KeepState) { New-CkChat -Model $model } else { New-CkChat -Model $model -NoCache }
        try {
            $turns = foreach ($message in $messages) { Invoke-CkChat $chat $message -Temperature 0 -MaxTokens $MaxTokens }
            @($turns)[-1]
        }
        finally { Remove-CkChat -Chat $chat }
    }

    function Get-Median([double[]] $Values) {
        $sorted = @($Values | Sort-Object)
        if ($sorted.Count % 2) { return $sorted[[int][Math]::Floor($sorted.Count / 2)] }
        ($sorted[$sorted.Count / 2 - 1] + $sorted[$sorted.Count / 2]) / 2
    }

    $kept = [Collections.Generic.List[object]]::new()
    $fresh = [Collections.Generic.List[object]]::new()
    for ($round = 1; $round -le $Rounds; $round++) {
        $order = if ($round % 2) { $true, $false } else { $false, $true }
        foreach ($keepState in $order) {
            Write-Host ("==> Round {0}/{1}: {2} turns {3}" -f $round, $Rounds, $Turns, ($keepState ? 'keeping the chat state' : 'without state (-NoCache)')) -ForegroundColor Cyan
            $last = Invoke-Conversation $keepState
            Write-Host ("turn {0}: {1} prompt tokens, {2} evaluated, first token after {3:N0} ms" -f $last.Number, $last.PromptTokens, $last.EvaluatedTokens, $last.TimeToFirstToken.TotalMilliseconds)
            ($keepState ? $kept : $fresh).Add($last)
        }
    }

    $sameText = @(for ($i = 0; $i -lt $Rounds; $i++) { $kept[$i].Text -ceq $fresh[$i].Text }) -notcontains $false
    $keptMs = Get-Median ($kept | ForEach-Object { $_.TimeToFirstToken.TotalMilliseconds })
    $freshMs = Get-Median ($fresh | ForEach-Object { $_.TimeToFirstToken.TotalMilliseconds })
    $row = {
        param($Label, $Runs, $Ms)
        '| {0} | {1:N0} | {2:N0} | {3:N0} |' -f $Label, $Runs[0].PromptTokens, (Get-Median ($Runs | ForEach-Object EvaluatedTokens)), $Ms
    }
    $cpu = (Get-Content /proc/cpuinfo | Where-Object { $_ -like 'model name*' } | Select-Object -First 1) -replace '^model name\s*:\s*', ''
    $lines = @(
        '## Chat',
        '',
        ("Measured {0:yyyy-MM-dd HH:mm} UTC by ``tests/bench/Chat.Bench.ps1`` on {1}, {2} logical CPUs, {3} threads, generated {4} model " -f [DateTime]::UtcNow, $cpu, [Environment]::ProcessorCount, $Threads, $Preset) +
        ("({0:N0} parameters, seed 1, ChatML template, context {1}). One conversation of {2} turns; each user message is a paragraph of " -f $summary.ParameterCount, $ContextSize, $Turns) +
        ("/usr/share/common-licenses/GPL-3 plus a one-line request; greedy replies of up to {0} tokens. Median over {1} rounds (order alternating) " -f $MaxTokens, $Rounds) +
        "of the time to the first token of the last turn, as the turn object reports it (prompt evaluation included).",
        '',
        "| chat | prompt tokens of turn $Turns | evaluated for turn $Turns | time to first token (ms) |",
        '|---|---|---|---|',
        (& $row 'New-CkChat (state kept between turns)' $kept $keptMs),
        (& $row 'New-CkChat -NoCache (whole history every turn)' $fresh $freshMs),
        '',
        ("Keeping the state makes the first token of turn {0} {1:N1}x sooner. Same reply text in every round with and without the kept state: {2}." -f $Turns, ($freshMs / [Math]::Max($keptMs, 0.001)), ($sameText ? 'yes' : 'NO'))
    )
    $lines | ForEach-Object { Write-Host $_ }
    if (-not $NoDocs) { Set-BenchmarkSection -Marker 'chat' -Lines $lines }
    Remove-CkModel -Model $model
}
finally {
    Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction Ignore
}
