#requires -Version 7.4
<#
.SYNOPSIS
    Server benchmark: Start-CkServer under 1, 2, 4 and 8 concurrent streamed clients on the generated Medium model, in
    F32 and in the quantization users run.
.DESCRIPTION
    Generates the Medium model with the ChatML template twice from the same seed: F32, and quantized by llama.cpp
    (New-CkModel -Quantization, Q4_K_M by default). Both are imported and served by one Start-CkServer on a free
    loopback port; rounds alternate between the models so load drift hits both alike. Per model it measures:
      - aggregate generation tokens/s with 1, 2, 4 and 8 clients streaming chat completions at once (continuous
        batching decodes them together), and the 4-client / 1-client ratio: over the streaming window (every token
        after each client's first, earliest first token to latest last token) and while all clients stream;
      - per step, from the server's own counters (CkServer.Batching): sequences per decode, time in llama_decode,
        sampling and batch building, and from the decode times the ratio llama.cpp itself allows at 4 and 8 clients
        (what one decode of N sequences costs against N decodes of one);
      - time to first token (first content delta) p50 and p99 with 4 concurrent clients;
      - single-client overhead: completion tokens per second of wall time for one streamed chat completion through
        the server vs Invoke-CkCompletion on the same messages, seed and settings in this pwsh (both include prompt
        processing; Invoke-CkCompletion runs with -NoCache, so neither reuses an earlier prompt), measured in pairs
        back to back, the order alternating from pair to pair (-SinglePairs per round and model); the ratio is the
        median of the pairs' ratios, next to the median token counts of both sides, the server's llama_decode
        milliseconds per step during those requests and Invoke-CkCompletion's generation milliseconds per token;
      - how long the first Start-CkServer of the process takes (it loads ASP.NET Core into the engine's context).
    Why Q4_K_M: it is what people download and run on CPUs - the default quantization of Ollama's model tags and the
    usual "recommended" file of GGUF model cards (about a quarter of F16's size at little quality loss); Q8_0 is the
    near-lossless choice, twice the size. F32 stays in the table because it is what New-CkModel writes by default and
    what earlier runs measured; its batched decode goes through llamafile's sgemm, which reads F32 weights about half
    as fast as the single-token dot product, so its ceiling at 4 clients sits near 2x. -Quantization takes several
    names for one row each: `-Quantization Q4_K_M, Q8_0` adds Q8_0, whose batched kernel (llamafile's Q8_0 tinyBLAS)
    gains the least from a 4-sequence batch of the types a native decode probe compared.
    Clients are HttpClient streams in this process (compiled with Add-Type), kept light on purpose (the machine's cores
    are the server's): lines are scanned as text, only the usage chunk is parsed. Writes the Server section of
    docs/benchmarks.md through Set-BenchmarkSection: every number and every verdict in it comes from this script.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [int] $Threads = [Environment]::ProcessorCount,
    [int] $GenerateTokens = 64,
    [int] $Rounds = 5,
    # Single-client pairs (server, Invoke-CkCompletion; order alternating) per round and model.
    [int] $SinglePairs = 4,
    [string] $Preset = 'Medium',
    # The quantized models measured next to F32 (New-CkModel -Quantization names), one table row each.
    [string[]] $Quantization = @('Q4_K_M'),
    # The F32 model generated earlier with New-CkModel -Preset <Preset> -ChatTemplate ChatML -Seed 1 (saves generating it again).
    [string] $ModelPath,
    # Print the section without writing docs/benchmarks.md (a smoke run).
    [switch] $NoWrite
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
. (Join-Path $PSScriptRoot 'BenchDocs.ps1')
# `pwsh -File` hands "Q4_K_M,Q8_0" over as one string.
$Quantization = @($Quantization -split ',' | ForEach-Object Trim | Where-Object { $_ })

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
$clientCounts = 1, 2, 4, 8
try {
    # One entry per measured weight type: the served model's name, its file and everything measured on it.
    $models = [Collections.Generic.List[object]]::new()
    foreach ($type in @('F32') + @($Quantization | Where-Object { $_ -ne 'F32' })) {
        $file = if ($type -eq 'F32' -and $ModelPath) { $ModelPath } else { Join-Path $work "$($Preset.ToLowerInvariant())-chat-$type.gguf" }
        if (-not (Test-Path -LiteralPath $file)) {
            Write-Host "==> New-CkModel -Preset $Preset -ChatTemplate ChatML -Quantization $type" -ForegroundColor Cyan
            $null = New-CkModel -Path $file -Preset $Preset -Seed 1 -ChatTemplate ChatML -Quantization $type
        }
        $entry = [pscustomobject]@{
            Type = $type; Name = "bench-$($type.ToLowerInvariant())"; File = $file; FileMB = (Get-Item -LiteralPath $file).Length / 1MB
            Model = $null; Aggregate = @{}; Steady = @{}; Profile = @{}
            FirstToken4 = [Collections.Generic.List[double]]::new()
            ServerSingle = [Collections.Generic.List[double]]::new(); CmdletSingle = [Collections.Generic.List[double]]::new()
            SingleRatio = [Collections.Generic.List[double]]::new(); SingleProfile = [Collections.Generic.List[object]]::new()
            ServerSingleTokens = [Collections.Generic.List[double]]::new(); CmdletSingleTokens = [Collections.Generic.List[double]]::new()
            CmdletGenerationMs = [Collections.Generic.List[double]]::new()
        }
        foreach ($n in $clientCounts) {
            $entry.Aggregate[$n] = [Collections.Generic.List[double]]::new(); $entry.Steady[$n] = [Collections.Generic.List[double]]::new()
            $entry.Profile[$n] = [Collections.Generic.List[object]]::new()
        }
        $entry.Model = Import-CkModel $file -Name $entry.Name -ContextSize 512 -Threads $Threads
        $models.Add($entry)
    }

    $startClock = [Diagnostics.Stopwatch]::StartNew()
    $server = Start-CkServer -Port 0 -MaxConcurrentRequests 8 -MaxQueuedRequests 64
    $startMs = $startClock.Elapsed.TotalMilliseconds
    $url = $server.Url.AbsoluteUri + 'v1/chat/completions'
    $question = 'Describe how a knowledge base answers questions with citations, step by step.'
    function New-Body([string] $Model, [int] $Seed) {
        @{ model = $Model; messages = @(@{ role = 'user'; content = $question }); max_tokens = $GenerateTokens; temperature = 0.8; seed = $Seed
            stream = $true; stream_options = @{ include_usage = $true } } | ConvertTo-Json -Depth 5 -Compress
    }
    function Get-ModelBatching([string] $Model) { $server.Batching | Where-Object Model -EQ $Model | Select-Object -First 1 }
    function Invoke-CmdletSingle($Entry, [int] $Seed) {
        Invoke-CkCompletion -Messages @(@{ role = 'user'; content = $question }) -Model $Entry.Model -MaxTokens $GenerateTokens -Temperature 0.8 -Seed $Seed -NoCache
    }

    foreach ($entry in $models) {
        Write-Host "==> Warm-up: $($entry.Type)" -ForegroundColor Cyan
        $null = [ServerBenchClient]::Concurrent($url, @(New-Body $entry.Name 1))
        $null = Invoke-CmdletSingle $entry 1
    }

    for ($round = 1; $round -le $Rounds; $round++) {
        # Alternate which model goes first, so neither always follows the other's warm caches.
        $order = if ($round % 2) { $models } else { @($models)[($models.Count - 1)..0] }
        foreach ($entry in $order) {
            foreach ($n in $clientCounts) {
                Write-Host "==> Round $round/$Rounds, $($entry.Type): $n concurrent streamed clients" -ForegroundColor Cyan
                $bodies = 1..$n | ForEach-Object { New-Body $entry.Name (100 * $round + $_) }
                $before = Get-ModelBatching $entry.Name
                $run = [ServerBenchClient]::Concurrent($url, [string[]]$bodies)
                $entry.Profile[$n].Add((Get-BatchingDelta $before (Get-ModelBatching $entry.Name)))
                $entry.Aggregate[$n].Add($run.GenerationTokensPerSecond)
                $entry.Steady[$n].Add($run.SteadyTokensPerSecond)
                if ($n -eq 4) { foreach ($stream in $run.Streams) { $entry.FirstToken4.Add($stream.FirstTokenMs - $stream.StartMs) } }
            }
            Write-Host "==> Round $round/$Rounds, $($entry.Type): $SinglePairs pairs of one server request and one Invoke-CkCompletion, same messages, seed and settings" -ForegroundColor Cyan
            for ($pair = 1; $pair -le $SinglePairs; $pair++) {
                $seed = 1000 * $round + $pair
                $serverRate = $null; $cmdletRate = $null
                # Alternate which goes first, so neither always runs in the other's wake.
                $sides = if (($round + $pair) % 2) { 'server', 'cmdlet' } else { 'cmdlet', 'server' }
                foreach ($side in $sides) {
                    if ($side -eq 'server') {
                        $before = Get-ModelBatching $entry.Name
                        $stream = [ServerBenchClient]::Concurrent($url, @(New-Body $entry.Name $seed)).Streams[0]
                        $entry.SingleProfile.Add((Get-BatchingDelta $before (Get-ModelBatching $entry.Name)))
                        $serverRate = $stream.CompletionTokens / (($stream.EndMs - $stream.StartMs) / 1000)
                        $entry.ServerSingleTokens.Add($stream.CompletionTokens)
                    }
                    else {
                        $clock = [Diagnostics.Stopwatch]::StartNew()
                        $result = Invoke-CmdletSingle $entry $seed
                        $cmdletRate = $result.CompletionTokens / $clock.Elapsed.TotalSeconds
                        $entry.CmdletSingleTokens.Add($result.CompletionTokens)
                        if ($result.TokensPerSecond -gt 0) { $entry.CmdletGenerationMs.Add(1000 / $result.TokensPerSecond) }
                    }
                }
                $entry.ServerSingle.Add($serverRate); $entry.CmdletSingle.Add($cmdletRate)
                $entry.SingleRatio.Add($serverRate / [Math]::Max($cmdletRate, 1e-9))
            }
        }
    }
    Stop-CkServer
    $loadAfter = (Get-Content /proc/loadavg -ErrorAction SilentlyContinue) -split ' ' | Select-Object -First 1

    $median = { param($values) Get-Percentile ([double[]]$values) 50 }
    $safe = { param($value) [Math]::Max($value, 1e-9) }
    $lines = @(
        '## Server (Start-CkServer)'
        ''
        ("Generated {0} model ({1:N0} parameters, ChatML, seed 1) in F32 and quantized by llama.cpp (New-CkModel -Quantization {2}), served together by one server; context 512 per request, {3} threads, {4} generated tokens per request " -f $Preset, $models[0].Model.ParameterCount, ($Quantization -join ', '), $Threads, $GenerateTokens) +
        ("(the same question, temperature 0.8, a different seed per client), medians of {0} rounds alternating between the models; clients stream server-sent events over loopback HTTP. " -f $Rounds) +
        'Aggregate generation tokens/s counts every token after each client''s first, from the earliest first token to the latest last one (the streaming window: prompt processing and connection set-up are left out). ' +
        $(if ($Quantization -contains 'Q4_K_M') { 'Q4_K_M is the quantization people typically download and run on CPUs (Ollama''s default, the usual recommended file of GGUF model cards). ' } else { '' }) +
        ("ggml's OpenMP threads: {0}. " -f $(if ($env:GOMP_SPINCOUNT -or $env:OMP_WAIT_POLICY) { "GOMP_SPINCOUNT=$env:GOMP_SPINCOUNT OMP_WAIT_POLICY=$env:OMP_WAIT_POLICY, set by the caller" } else { 'CkLlm''s bounded spin (GOMP_SPINCOUNT=1000)' })) +
        ("Load average when the run started: {0}, when it ended: {1}. Written by tests/bench/Server.Bench.ps1 on {2:yyyy-MM-dd}." -f $load, $loadAfter, (Get-Date))
        ''
        'Targets: aggregate generation tokens/s at 4 clients >= 2x the single-client rate; a single client through the server >= 0.95x Invoke-CkCompletion (the median of back-to-back pairs, see each row''s details). The verdict is computed from the numbers of the row; "llama.cpp allows" is 4 x (llama_decode ms per step with 1 client) / (ms per step with 4), the ratio no scheduler on top of llama.cpp can beat; a row below 2x within 10% of that ratio is "at llama.cpp''s own limit".'
        ''
        '| weights | file MB | 1 client tok/s | 2 clients | 4 clients | 8 clients | 4 clients vs 1 | llama.cpp allows at 4 | first token at 4 clients p50 / p99 ms | 1 client: server vs Invoke-CkCompletion | verdict |'
        '|---|---|---|---|---|---|---|---|---|---|---|'
    )
    $details = @()
    foreach ($entry in $models) {
        $rate = @{}; $steadyRate = @{}; $perStep = @{}
        foreach ($n in $clientCounts) { $rate[$n] = & $median $entry.Aggregate[$n]; $steadyRate[$n] = & $median $entry.Steady[$n]; $perStep[$n] = Get-BatchingSum $entry.Profile[$n] }
        $ratio4 = $rate[4] / (& $safe $rate[1])
        $ceiling4 = 4 * $perStep[1].DecodeMs / (& $safe $perStep[4].DecodeMs)
        $ceiling8 = 8 * $perStep[1].DecodeMs / (& $safe $perStep[8].DecodeMs)
        $overhead = & $median $entry.SingleRatio
        $singleDecode = Get-BatchingSum $entry.SingleProfile
        $batchingVerdict = if ($ratio4 -ge 2) { '4 clients >= 2x: met' }
            elseif ($ratio4 -ge 0.9 * $ceiling4) { "4 clients >= 2x: not met, at llama.cpp's own limit ({0:N2}x of {1:N2}x)" -f $ratio4, $ceiling4 }
            else { "4 clients >= 2x: not met, below llama.cpp's limit ({0:N2}x of {1:N2}x)" -f $ratio4, $ceiling4 }
        $overheadVerdict = if ($overhead -ge 0.95) { 'overhead >= 0.95x: met' } else { 'overhead >= 0.95x: not met' }
        $lines += ('| {0} | {1:N0} | {2:N1} | {3:N1} | {4:N1} | {5:N1} | **{6:N2}x** | {7:N2}x | {8:N0} / {9:N0} | {10:N2}x | {11}; {12} |' -f $entry.Type, $entry.FileMB,
            $rate[1], $rate[2], $rate[4], $rate[8], $ratio4, $ceiling4, (Get-Percentile $entry.FirstToken4 50), (Get-Percentile $entry.FirstToken4 99), $overhead, $batchingVerdict, $overheadVerdict)

        $details += @(
            ''
            "### $($entry.Type): per client count"
            ''
            '| concurrent streamed clients | aggregate generation tokens/s | vs 1 client | while all stream: tokens/s | vs 1 client | sequences per decode | llama_decode ms/step | sampling ms/step | batch building ms/step |'
            '|---|---|---|---|---|---|---|---|---|'
        )
        foreach ($n in $clientCounts) {
            $p = $perStep[$n]
            $details += ('| {0} | {1:N1} | {2:N2}x | {3:N1} | {4:N2}x | {5:N2} | {6:N2} | {7:N3} | {8:N3} |' -f $n, $rate[$n], ($rate[$n] / (& $safe $rate[1])),
                $steadyRate[$n], ($steadyRate[$n] / (& $safe $steadyRate[1])), $p.Sequences, $p.DecodeMs, $p.SamplingMs, $p.SchedulingMs)
        }
        $details += @(
            ''
            ('What llama.cpp itself allows: 4 x {0:N2} ms (one sequence per decode) / {1:N2} ms (four) = {2:N2}x at 4 clients; 8 x {0:N2} / {3:N2} ms = {4:N2}x at 8. Time to first token with 4 concurrent clients ({5} requests): p50 {6:N0} ms, p99 {7:N0} ms.' -f
                $perStep[1].DecodeMs, $perStep[4].DecodeMs, $ceiling4, $perStep[8].DecodeMs, $ceiling8, $entry.FirstToken4.Count,
                (Get-Percentile $entry.FirstToken4 50), (Get-Percentile $entry.FirstToken4 99))
            ''
            ('Single client, {0} pairs back to back (order alternating), completion tokens per second of wall time (prompt included), medians: server {1:N1} ({2:N0} tokens), Invoke-CkCompletion {3:N1} ({4:N0} tokens); per-pair ratio server / Invoke-CkCompletion median **{5:N2}x** (lowest {6:N2}x, highest {7:N2}x). Inside: the server''s llama_decode {8:N2} ms per step during those requests (prompt step included), Invoke-CkCompletion {9:N2} ms per generated token (decode and sampling).' -f
                $entry.SingleRatio.Count, (& $median $entry.ServerSingle), (& $median $entry.ServerSingleTokens), (& $median $entry.CmdletSingle), (& $median $entry.CmdletSingleTokens),
                $overhead, ($entry.SingleRatio | Measure-Object -Minimum).Minimum, ($entry.SingleRatio | Measure-Object -Maximum).Maximum, $singleDecode.DecodeMs, (& $median $entry.CmdletGenerationMs))
        )
    }
    $lines += $details
    $lines += @(
        ''
        '"While all stream" counts only the deltas between the last client''s first token and the first client''s last one (the steady state). Per step (one llama_decode for every running request) from the server''s own counters (Get-CkServer''s Batching), all rounds of that row: sequences per decode counts generating sequences only (prompt steps included in the mean); sampling includes handing each token''s text to its stream.'
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
