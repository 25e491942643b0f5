#requires -Version 7.4
<#
.SYNOPSIS
    Remote-model benchmark: the same generated model through Start-CkServer and the OpenAI SDK (Import-CkModel
    -Endpoint) against Invoke-CkCompletion on it in this process.
.DESCRIPTION
    Generates a model (Medium preset, ChatML template), serves it with Start-CkServer in another pwsh process on a free
    loopback port, and imports it twice here: as a local model from the same file, and as a remote model on that
    server. In alternating order, one request at a time:
      - overhead per request: short chat requests (a one-line question, -MaxTokens 2, greedy) timed around
        Invoke-CkCompletion; the median remote time minus the median local time is what the HTTP round trip, the SDK
        and the server add to a request;
      - generation: longer greedy chat completions (-MaxTokens -GenerateTokens); the generation rate each result reports
        (tokens after the first per second) and their ratio, and whether both gave the same text.
    Both sides run with default flags (each keeps a llama.cpp context between requests; every short request differs
    after the chat template's first tokens). Both processes use -Threads threads; they never run at the same time. Writes the Remote section of docs/benchmarks.md
    through Set-BenchmarkSection (every number and sentence in it comes from this script) unless -NoDocs.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [string] $Preset = 'Medium',
    [int] $Threads = [Environment]::ProcessorCount,
    [int] $ContextSize = 1024,
    # Short requests per side for the overhead.
    [int] $Requests = 30,
    # Tokens per long completion, and how many long completions per side.
    [int] $GenerateTokens = 128,
    [int] $Rounds = 5,
    [switch] $NoDocs
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
. (Join-Path $PSScriptRoot 'BenchDocs.ps1')
. (Join-Path $PSScriptRoot '../pester/Remote.TestHelpers.ps1') # Get-CkFreePort, Start-CkChildPwsh, Wait-CkHttp, Stop-CkServerProcess

function Get-Median([double[]] $Values) {
    $sorted = @($Values | Sort-Object)
    if ($sorted.Count % 2) { return $sorted[[int][Math]::Floor($sorted.Count / 2)] }
    ($sorted[$sorted.Count / 2 - 1] + $sorted[$sorted.Count / 2]) / 2
}

$ModulePath = (Resolve-Path -LiteralPath $ModulePath).Path # the server process gets it too
$load = ((Get-Content /proc/loadavg -ErrorAction SilentlyContinue) -split ' ')[0]
Import-Module $ModulePath -Force
$work = Join-Path ([IO.Path]::GetTempPath()) "ckllm-remote-bench-$([guid]::NewGuid().ToString('N'))"
New-Item -ItemType Directory -Path $work | Out-Null
$server = $null
try {
    $file = Join-Path $work "$($Preset.ToLowerInvariant())-chat.gguf"
    Write-Host "==> New-CkModel -Preset $Preset -ChatTemplate ChatML" -ForegroundColor Cyan
    $summary = New-CkModel -Path $file -Preset $Preset -Seed 1 -ChatTemplate ChatML

    $port = Get-CkFreePort
    $serve = Join-Path $work 'serve.ps1'
    Set-Content -LiteralPath $serve -Value @'
param([string] $ModulePath, [string] $ModelFile, [int] $Port, [int] $ContextSize, [int] $Threads)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
$null = Import-CkModel $ModelFile -Name bench -ContextSize $ContextSize -Threads $Threads
Start-CkServer -Port $Port -Wait | Out-Null
'@
    Write-Host "==> Start-CkServer in another pwsh on port $port" -ForegroundColor Cyan
    $server = [pscustomobject]@{
        Process  = Start-CkChildPwsh $serve @('-ModulePath', $ModulePath, '-ModelFile', $file, '-Port', $port, '-ContextSize', $ContextSize, '-Threads', $Threads)
        Endpoint = "http://127.0.0.1:$port"
    }
    Wait-CkHttp "$($server.Endpoint)/v1/models" -Process $server.Process -TimeoutSec 300

    $local = Import-CkModel $file -Name local -ContextSize $ContextSize -Threads $Threads
    $remote = Import-CkModel -Endpoint $server.Endpoint -RemoteModel bench -Name remote -ContextSize $ContextSize
    $sides = [ordered]@{ local = $local; remote = $remote }
    function Invoke-Side([string] $Side, [string] $Question, [int] $MaxTokens) {
        $messages = @(@{ role = 'user'; content = $Question })
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $result = Invoke-CkCompletion -Messages $messages -Model $sides[$Side] -MaxTokens $MaxTokens -Temperature 0
        [pscustomobject]@{ Ms = $clock.Elapsed.TotalMilliseconds; Result = $result }
    }

    Write-Host '==> Warm-up' -ForegroundColor Cyan
    foreach ($side in $sides.Keys) { $null = Invoke-Side $side 'warm up' 4 }

    $short = @{ local = [Collections.Generic.List[double]]::new(); remote = [Collections.Generic.List[double]]::new() }
    Write-Host "==> Overhead: $Requests short requests per side, alternating" -ForegroundColor Cyan
    for ($i = 1; $i -le $Requests; $i++) {
        $order = if ($i % 2) { 'local', 'remote' } else { 'remote', 'local' }
        foreach ($side in $order) { $short[$side].Add((Invoke-Side $side "Question $i`: what is a knowledge base?" 2).Ms) }
    }

    $rates = @{ local = [Collections.Generic.List[double]]::new(); remote = [Collections.Generic.List[double]]::new() }
    $texts = @{ local = [Collections.Generic.List[string]]::new(); remote = [Collections.Generic.List[string]]::new() }
    $tokens = [Collections.Generic.List[int]]::new()
    $question = 'Describe how a knowledge base answers questions with citations, step by step.'
    for ($round = 1; $round -le $Rounds; $round++) {
        $order = if ($round % 2) { 'local', 'remote' } else { 'remote', 'local' }
        foreach ($side in $order) {
            $run = Invoke-Side $side $question $GenerateTokens
            Write-Host ("round {0}/{1} {2}: {3} tokens, {4:N1} tok/s generation, {5:N0} ms" -f $round, $Rounds, $side, $run.Result.CompletionTokens, $run.Result.TokensPerSecond, $run.Ms)
            $rates[$side].Add($run.Result.TokensPerSecond)
            $texts[$side].Add($run.Result.Text)
            if ($side -eq 'remote') { $tokens.Add($run.Result.CompletionTokens) }
        }
    }

    $localShort = Get-Median $short.local
    $remoteShort = Get-Median $short.remote
    $localRate = Get-Median $rates.local
    $remoteRate = Get-Median $rates.remote
    $sameText = @(for ($i = 0; $i -lt $Rounds; $i++) { $texts.local[$i] -ceq $texts.remote[$i] }) -notcontains $false
    $cpu = (Get-Content /proc/cpuinfo | Where-Object { $_ -like 'model name*' } | Select-Object -First 1) -replace '^model name\s*:\s*', ''
    $lines = @(
        '## Remote models (OpenAI SDK against Start-CkServer)'
        ''
        ("Measured {0:yyyy-MM-dd HH:mm} UTC by ``tests/bench/Remote.Bench.ps1`` on {1}, {2} logical CPUs, load average {3} at the start. " -f [DateTime]::UtcNow, $cpu, [Environment]::ProcessorCount, $load) +
        ("Generated {0} model ({1:N0} parameters, seed 1, ChatML), context {2}, {3} threads in each process. " -f $Preset, $summary.ParameterCount, $ContextSize, $Threads) +
        'The same file is imported locally (Invoke-CkCompletion in the bench process, default flags) and served by Start-CkServer in another pwsh process, ' +
        'reached through Import-CkModel -Endpoint (the OpenAI SDK''s chat client, streamed, loopback HTTP). One request at a time, sides alternating, greedy.'
        ''
        '| measure | local | remote | remote vs local |'
        '|---|---|---|---|'
        ('| short request ({0} per side, a one-line question, 2 tokens): median wall time | {1:N1} ms | {2:N1} ms | **{3:+#,##0.0;-#,##0.0} ms** per request |' -f $Requests, $localShort, $remoteShort, ($remoteShort - $localShort))
        ('| generation ({0} completions per side of up to {1} tokens, median {2} generated): tokens/s after the first token | {3:N1} | {4:N1} | **{5:N2}x** |' -f $Rounds, $GenerateTokens, (Get-Median $tokens), $localRate, $remoteRate, ($remoteRate / [Math]::Max($localRate, 1e-9)))
        ''
        ('The remote rate is timed by the client from the arrival of the streamed pieces; the local one by the engine. Same text from both sides in every round: {0}.' -f ($sameText ? 'yes' : 'NO'))
    )
    $lines | ForEach-Object { Write-Host $_ }
    if (-not $NoDocs) { Set-BenchmarkSection -Marker 'remote' -Lines $lines }
}
finally {
    Stop-CkServerProcess $server
    Get-CkModel | Remove-CkModel -Confirm:$false
    Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction Ignore
}
