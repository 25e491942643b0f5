#requires -Version 7.4
<#
.SYNOPSIS
    Server benchmark: Start-CkServer under 1, 2, 4 and 8 concurrent streamed clients on the generated Medium model.
.DESCRIPTION
    Generates a Medium model with the ChatML template, imports it, starts a server on a free loopback port and measures,
    in alternating rounds:
      - aggregate generation tokens/s with 1, 2, 4 and 8 clients streaming chat completions at once (continuous
        batching decodes them together), and the 4-client / 1-client ratio: over the streaming window (every token
        after each client's first, earliest first token to latest last token) and while all clients stream;
      - per step, from the server's own counters (CkServer.Batching): sequences per decode, time in llama_decode,
        sampling and batch building, and from the decode times the ratio llama.cpp itself allows at 4 clients;
      - time to first token (first content delta) p50 and p99 with 4 concurrent clients;
      - single-client overhead: completion tokens per second of wall time for one streamed chat completion through
        the server vs Invoke-CkCompletion on the same messages and settings in this pwsh (both include prompt
        processing);
      - how long the first Start-CkServer of the process takes (it loads ASP.NET Core into the engine's context).
    Clients are HttpClient streams in this process (compiled with Add-Type), kept light on purpose (the machine's cores
    are the server's): lines are scanned as text, only the usage chunk is parsed. Writes the Server section of docs/benchmarks.md through Set-BenchmarkSection: every number in it comes
    from this script.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [int] $Threads = [Environment]::ProcessorCount,
    [int] $GenerateTokens = 64,
    [int] $Rounds = 5,
    [string] $Preset = 'Medium',
    # A model generated earlier with New-CkModel -Preset <Preset> -ChatTemplate ChatML (saves generating it again).
    [string] $ModelPath,
    # Print the section without writing docs/benchmarks.md (a smoke run).
    [switch] $NoWrite
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
. (Join-Path $PSScriptRoot 'BenchDocs.ps1')

Add-Type -TypeDefinition @'
using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Net.Http;
using System.Text;
using System.Text.Json;
using System.Threading.Tasks;

public sealed class ServerBenchStream
{
    public double StartMs;
    public double FirstTokenMs = -1;
    public double LastTokenMs = -1;
    public double EndMs;
    public int CompletionTokens;
    /// <summary>Arrival time of every content delta (one per token, unless a stop string held text back).</summary>
    public System.Collections.Generic.List<double> TokenMs = new System.Collections.Generic.List<double>(256);
}

public sealed class ServerBenchRun
{
    public ServerBenchStream[] Streams;
    public double WallMs;
    /// <summary>Generation tokens per second over the streaming window: every token after each client's first,
    /// from the earliest first token to the latest last token (prompt processing and connection set-up left out).</summary>
    public double GenerationTokensPerSecond
    {
        get
        {
            var start = Streams.Min(s => s.FirstTokenMs);
            var end = Streams.Max(s => s.LastTokenMs);
            var tokens = Streams.Sum(s => Math.Max(0, s.CompletionTokens - 1));
            return end > start ? tokens / ((end - start) / 1000) : 0;
        }
    }

    /// <summary>Generation tokens per second while every client streams: deltas that arrived after the last client's
    /// first token and up to the first client's last one (the steady state continuous batching promises).</summary>
    public double SteadyTokensPerSecond
    {
        get
        {
            var start = Streams.Max(s => s.FirstTokenMs);
            var end = Streams.Min(s => s.LastTokenMs);
            var tokens = Streams.Sum(s => s.TokenMs.Count(t => t > start && t <= end));
            return end > start ? tokens / ((end - start) / 1000) : 0;
        }
    }
}

/// <summary>A deliberately light client (the machine is shared with the server): one HttpClient, lines scanned as
/// text, only the usage chunk parsed as JSON.</summary>
public static class ServerBenchClient
{
    private static readonly HttpClient Http = new HttpClient { Timeout = TimeSpan.FromMinutes(10) };

    public static async Task<ServerBenchStream> StreamAsync(string url, string body, Stopwatch clock)
    {
        var result = new ServerBenchStream { StartMs = clock.Elapsed.TotalMilliseconds };
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync().ConfigureAwait(false));
        string line;
        while ((line = await reader.ReadLineAsync().ConfigureAwait(false)) != null)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
            if (line.StartsWith("data: [DONE]", StringComparison.Ordinal)) break;
            var content = line.IndexOf("\"content\":\"", StringComparison.Ordinal);
            if (content >= 0 && line[content + 11] != '"')
            {
                var now = clock.Elapsed.TotalMilliseconds;
                if (result.FirstTokenMs < 0) result.FirstTokenMs = now;
                result.LastTokenMs = now;
                result.TokenMs.Add(now);
            }
            if (line.Contains("\"usage\":{"))
            {
                using var json = JsonDocument.Parse(line.Substring(6));
                result.CompletionTokens = json.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
            }
        }
        result.EndMs = clock.Elapsed.TotalMilliseconds;
        return result;
    }

    /// <summary>Starts the bodies at once and waits for every stream.</summary>
    public static ServerBenchRun Concurrent(string url, string[] bodies)
    {
        var clock = Stopwatch.StartNew();
        var results = Task.WhenAll(bodies.Select(b => Task.Run(() => StreamAsync(url, b, clock)))).GetAwaiter().GetResult();
        return new ServerBenchRun { Streams = results, WallMs = clock.Elapsed.TotalMilliseconds };
    }
}
'@

function Get-Percentile([double[]] $Values, [double] $Percent) {
    $sorted = @($Values | Sort-Object)
    if ($sorted.Count -eq 0) { return 0 }
    $rank = [Math]::Ceiling($Percent / 100 * $sorted.Count) - 1
    $sorted[[Math]::Max(0, [Math]::Min($sorted.Count - 1, $rank))]
}

# What the server's batch counters (CkServer.Batching) gained during one run.
function Get-BatchingDelta($Before, $After) {
    [pscustomobject]@{
        Steps = $After.Steps - $(if ($Before) { $Before.Steps } else { 0 })
        GeneratedTokens = $After.GeneratedTokens - $(if ($Before) { $Before.GeneratedTokens } else { 0 })
        Decode = $After.Decode - $(if ($Before) { $Before.Decode } else { [TimeSpan]::Zero })
        Sampling = $After.Sampling - $(if ($Before) { $Before.Sampling } else { [TimeSpan]::Zero })
        Scheduling = $After.Scheduling - $(if ($Before) { $Before.Scheduling } else { [TimeSpan]::Zero })
    }
}

# Per-step means over several runs' deltas.
function Get-BatchingSum($Deltas) {
    $steps = [Math]::Max(1, ($Deltas | Measure-Object Steps -Sum).Sum)
    [pscustomobject]@{
        Sequences = ($Deltas | Measure-Object GeneratedTokens -Sum).Sum / $steps
        DecodeMs = ($Deltas | ForEach-Object { $_.Decode.TotalMilliseconds } | Measure-Object -Sum).Sum / $steps
        SamplingMs = ($Deltas | ForEach-Object { $_.Sampling.TotalMilliseconds } | Measure-Object -Sum).Sum / $steps
        SchedulingMs = ($Deltas | ForEach-Object { $_.Scheduling.TotalMilliseconds } | Measure-Object -Sum).Sum / $steps
    }
}

$load = (Get-Content /proc/loadavg -ErrorAction SilentlyContinue) -split ' ' | Select-Object -First 1
Import-Module $ModulePath -Force
$work = Join-Path ([IO.Path]::GetTempPath()) "ckllm-server-bench-$([guid]::NewGuid().ToString('N'))"
New-Item -ItemType Directory -Path $work | Out-Null
try {
    if ($ModelPath) {
        $file = $ModelPath
    }
    else {
        $file = Join-Path $work "$($Preset.ToLowerInvariant())-chat.gguf"
        Write-Host "==> New-CkModel -Preset $Preset -ChatTemplate ChatML" -ForegroundColor Cyan
        $null = New-CkModel -Path $file -Preset $Preset -Seed 1 -ChatTemplate ChatML
    }
    $model = Import-CkModel $file -Name bench -ContextSize 512 -Threads $Threads
    $summary = $model

    $startClock = [Diagnostics.Stopwatch]::StartNew()
    $server = Start-CkServer -Port 0 -MaxConcurrentRequests 8 -MaxQueuedRequests 64
    $startMs = $startClock.Elapsed.TotalMilliseconds
    $url = $server.Url.AbsoluteUri + 'v1/chat/completions'
    $question = 'Describe how a knowledge base answers questions with citations, step by step.'
    function New-Body([int] $Seed) {
        @{ model = 'bench'; messages = @(@{ role = 'user'; content = $question }); max_tokens = $GenerateTokens; temperature = 0.8; seed = $Seed
            stream = $true; stream_options = @{ include_usage = $true } } | ConvertTo-Json -Depth 5 -Compress
    }

    Write-Host '==> Warm-up' -ForegroundColor Cyan
    $null = [ServerBenchClient]::Concurrent($url, @(New-Body 1))
    $null = Invoke-CkCompletion -Messages @(@{ role = 'user'; content = $question }) -Model $model -MaxTokens $GenerateTokens -Temperature 0.8 -Seed 1 -NoCache

    $clientCounts = 1, 2, 4, 8
    $aggregate = @{}; $steady = @{}; $profile = @{}
    foreach ($n in $clientCounts) {
        $aggregate[$n] = [Collections.Generic.List[double]]::new(); $steady[$n] = [Collections.Generic.List[double]]::new()
        $profile[$n] = [Collections.Generic.List[object]]::new()
    }
    $firstToken4 = [Collections.Generic.List[double]]::new()
    $serverSingle = [Collections.Generic.List[double]]::new()
    $cmdletSingle = [Collections.Generic.List[double]]::new()
    for ($round = 1; $round -le $Rounds; $round++) {
        foreach ($n in $clientCounts) {
            Write-Host "==> Round $round/$Rounds : $n concurrent streamed clients" -ForegroundColor Cyan
            $bodies = 1..$n | ForEach-Object { New-Body (100 * $round + $_) }
            $before = @($server.Batching)[0]
            $run = [ServerBenchClient]::Concurrent($url, [string[]]$bodies)
            $profile[$n].Add((Get-BatchingDelta $before @($server.Batching)[0]))
            $aggregate[$n].Add($run.GenerationTokensPerSecond)
            $steady[$n].Add($run.SteadyTokensPerSecond)
            if ($n -eq 4) { foreach ($stream in $run.Streams) { $firstToken4.Add($stream.FirstTokenMs - $stream.StartMs) } }
            if ($n -eq 1) { $serverSingle.Add($run.Streams[0].CompletionTokens / (($run.Streams[0].EndMs - $run.Streams[0].StartMs) / 1000)) }
        }
        Write-Host "==> Round $round/$Rounds : Invoke-CkCompletion, same messages and settings" -ForegroundColor Cyan
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $result = Invoke-CkCompletion -Messages @(@{ role = 'user'; content = $question }) -Model $model -MaxTokens $GenerateTokens -Temperature 0.8 -Seed (100 * $round + 1) -NoCache
        $cmdletSingle.Add($result.CompletionTokens / $clock.Elapsed.TotalSeconds)
    }
    Stop-CkServer
    $loadAfter = (Get-Content /proc/loadavg -ErrorAction SilentlyContinue) -split ' ' | Select-Object -First 1

    $median = { param($values) Get-Percentile ([double[]]$values) 50 }
    $rate = @{}; $steadyRate = @{}
    foreach ($n in $clientCounts) { $rate[$n] = & $median $aggregate[$n]; $steadyRate[$n] = & $median $steady[$n] }
    $serverRate = & $median $serverSingle
    $cmdletRate = & $median $cmdletSingle
    $lines = @(
        '## Server (Start-CkServer)'
        ''
        ("Generated {0} model ({1:N0} parameters, F32, ChatML), context 512 per request, {2} threads, {3} generated tokens per request " -f $Preset, $summary.ParameterCount, $Threads, $GenerateTokens) +
        ("(the same question, temperature 0.8, a different seed per client), medians of {0} rounds; clients stream server-sent events over loopback HTTP. " -f $Rounds) +
        'Aggregate generation tokens/s counts every token after each client''s first, from the earliest first token to the latest last one (the streaming window: prompt processing and connection set-up are left out). ' +
        ("ggml's OpenMP threads: {0}. " -f $(if ($env:GOMP_SPINCOUNT -or $env:OMP_WAIT_POLICY) { "GOMP_SPINCOUNT=$env:GOMP_SPINCOUNT OMP_WAIT_POLICY=$env:OMP_WAIT_POLICY, set by the caller" } else { 'CkLlm''s bounded spin (GOMP_SPINCOUNT=1000)' })) +
        ("Load average when the run started: {0}, when it ended: {1}. Written by tests/bench/Server.Bench.ps1 on {2:yyyy-MM-dd}." -f $load, $loadAfter, (Get-Date))
        ''
        '| concurrent streamed clients | aggregate generation tokens/s | vs 1 client | while all stream: tokens/s | vs 1 client | sequences per decode | llama_decode ms/step | sampling ms/step | batch building ms/step |'
        '|---|---|---|---|---|---|---|---|---|'
    )
    foreach ($n in $clientCounts) {
        $p = Get-BatchingSum $profile[$n]
        $lines += ('| {0} | {1:N1} | **{2:N2}x** | {3:N1} | {4:N2}x | {5:N2} | {6:N2} | {7:N3} | {8:N3} |' -f $n, $rate[$n], ($rate[$n] / [Math]::Max($rate[1], 1e-9)),
            $steadyRate[$n], ($steadyRate[$n] / [Math]::Max($steadyRate[1], 1e-9)), $p.Sequences, $p.DecodeMs, $p.SamplingMs, $p.SchedulingMs)
    }
    $decode1 = (Get-BatchingSum $profile[1]).DecodeMs; $decode4 = (Get-BatchingSum $profile[4]).DecodeMs
    $lines += @(
        ''
        ('What llama.cpp itself allows at 4 clients: 4 x {0:N2} ms (one sequence per decode) / {1:N2} ms (four) = **{2:N2}x** the single-client rate, before any sampling or HTTP.' -f $decode1, $decode4, (4 * $decode1 / [Math]::Max($decode4, 1e-9)))
        ''
        '"While all stream" counts only the deltas between the last client''s first token and the first client''s last one (the steady state). Per step (one llama_decode for every running request) from the server''s own counters (Get-CkServer''s Batching), all rounds of that row: sequences per decode counts generating sequences only (prompt steps included in the mean); sampling includes handing each token''s text to its stream.'
        ''
        ('Time to first token with 4 concurrent clients ({0} requests): p50 {1:N0} ms, p99 {2:N0} ms.' -f $firstToken4.Count, (Get-Percentile $firstToken4 50), (Get-Percentile $firstToken4 99))
        ''
        ('Single client, completion tokens per second of wall time (prompt included): server {0:N1}, Invoke-CkCompletion {1:N1}: **{2:N2}x**.' -f $serverRate, $cmdletRate, ($serverRate / [Math]::Max($cmdletRate, 1e-9)))
        ''
        ('The first Start-CkServer of the process (ASP.NET Core loaded into the engine''s context, Kestrel bound) took {0:N0} ms.' -f $startMs)
    )
    $lines | ForEach-Object { Write-Host $_ }
    if (-not $NoWrite) { Set-BenchmarkSection -Marker 'Server' -Lines $lines }
}
finally {
    Stop-CkServer -ErrorAction SilentlyContinue
    Get-CkModel | Remove-CkModel -Confirm:$false
    Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction Ignore
}
