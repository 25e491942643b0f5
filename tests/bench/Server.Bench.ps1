#requires -Version 7.4
<#
.SYNOPSIS
    Server benchmark: Start-CkServer under 1, 2, 4 and 8 concurrent streamed clients on the generated Medium model.
.DESCRIPTION
    Generates a Medium model with the ChatML template, imports it, starts a server on a free loopback port and measures,
    in alternating rounds:
      - aggregate generation tokens/s with 1, 2, 4 and 8 clients streaming chat completions at once (continuous
        batching decodes them together), and the 4-client / 1-client ratio;
      - time to first token (first content delta) p50 and p99 with 4 concurrent clients;
      - single-client overhead: completion tokens per second of wall time for one streamed chat completion through
        the server vs Invoke-CkCompletion on the same messages and settings in this pwsh (both include prompt
        processing);
      - how long the first Start-CkServer of the process takes (it loads ASP.NET Core into the engine's context).
    Clients are HttpClient streams in this process (compiled with Add-Type): each reads server-sent events and the
    usage chunk. Writes the Server section of docs/benchmarks.md through Set-BenchmarkSection: every number in it comes
    from this script.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [int] $Threads = [Environment]::ProcessorCount,
    [int] $GenerateTokens = 48,
    [int] $Rounds = 3,
    [string] $Preset = 'Medium'
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
    public double FirstTokenMs;
    public double TotalMs;
    public int CompletionTokens;
}

public static class ServerBenchClient
{
    private static readonly HttpClient Http = new HttpClient { Timeout = TimeSpan.FromMinutes(10) };

    /// <summary>Streams one chat completion; times the first content delta and the end, reads usage.</summary>
    public static async Task<ServerBenchStream> StreamAsync(string url, string body)
    {
        var clock = Stopwatch.StartNew();
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var result = new ServerBenchStream { FirstTokenMs = -1 };
        string line;
        while ((line = await reader.ReadLineAsync()) != null)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
            var data = line.Substring(6);
            if (data == "[DONE]") break;
            using var json = JsonDocument.Parse(data);
            var root = json.RootElement;
            if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
                result.CompletionTokens = usage.GetProperty("completion_tokens").GetInt32();
            if (result.FirstTokenMs < 0 && root.TryGetProperty("choices", out var choices) && choices.GetArrayLength() > 0
                && choices[0].GetProperty("delta").TryGetProperty("content", out var content) && content.GetString() is { Length: > 0 })
                result.FirstTokenMs = clock.Elapsed.TotalMilliseconds;
        }
        result.TotalMs = clock.Elapsed.TotalMilliseconds;
        return result;
    }

    /// <summary>Starts the bodies at once; returns every stream and the wall time from start to the last end.</summary>
    public static Tuple<ServerBenchStream[], double> Concurrent(string url, string[] bodies)
    {
        var clock = Stopwatch.StartNew();
        var results = Task.WhenAll(bodies.Select(b => Task.Run(() => StreamAsync(url, b)))).GetAwaiter().GetResult();
        return Tuple.Create(results, clock.Elapsed.TotalMilliseconds);
    }
}
'@

function Get-Percentile([double[]] $Values, [double] $Percent) {
    $sorted = @($Values | Sort-Object)
    if ($sorted.Count -eq 0) { return 0 }
    $rank = [Math]::Ceiling($Percent / 100 * $sorted.Count) - 1
    $sorted[[Math]::Max(0, [Math]::Min($sorted.Count - 1, $rank))]
}

$load = (Get-Content /proc/loadavg -ErrorAction SilentlyContinue) -split ' ' | Select-Object -First 1
Import-Module $ModulePath -Force
$work = Join-Path ([IO.Path]::GetTempPath()) "ckllm-server-bench-$([guid]::NewGuid().ToString('N'))"
New-Item -ItemType Directory -Path $work | Out-Null
try {
    $file = Join-Path $work "$($Preset.ToLowerInvariant())-chat.gguf"
    Write-Host "==> New-CkModel -Preset $Preset -ChatTemplate ChatML" -ForegroundColor Cyan
    $summary = New-CkModel -Path $file -Preset $Preset -Seed 1 -ChatTemplate ChatML
    $model = Import-CkModel $file -Name bench -ContextSize 512 -Threads $Threads

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
    $aggregate = @{}; foreach ($n in $clientCounts) { $aggregate[$n] = [Collections.Generic.List[double]]::new() }
    $firstToken4 = [Collections.Generic.List[double]]::new()
    $serverSingle = [Collections.Generic.List[double]]::new()
    $cmdletSingle = [Collections.Generic.List[double]]::new()
    for ($round = 1; $round -le $Rounds; $round++) {
        foreach ($n in $clientCounts) {
            Write-Host "==> Round $round/$Rounds : $n concurrent streamed clients" -ForegroundColor Cyan
            $bodies = 1..$n | ForEach-Object { New-Body (100 * $round + $_) }
            $run = [ServerBenchClient]::Concurrent($url, [string[]]$bodies)
            $tokens = ($run.Item1 | Measure-Object CompletionTokens -Sum).Sum
            $aggregate[$n].Add($tokens / ($run.Item2 / 1000))
            if ($n -eq 4) { foreach ($stream in $run.Item1) { $firstToken4.Add($stream.FirstTokenMs) } }
            if ($n -eq 1) { $serverSingle.Add($run.Item1[0].CompletionTokens / ($run.Item1[0].TotalMs / 1000)) }
        }
        Write-Host "==> Round $round/$Rounds : Invoke-CkCompletion, same messages and settings" -ForegroundColor Cyan
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $result = Invoke-CkCompletion -Messages @(@{ role = 'user'; content = $question }) -Model $model -MaxTokens $GenerateTokens -Temperature 0.8 -Seed (100 * $round + 1) -NoCache
        $cmdletSingle.Add($result.CompletionTokens / $clock.Elapsed.TotalSeconds)
    }
    Stop-CkServer

    $median = { param($values) Get-Percentile ([double[]]$values) 50 }
    $rate = @{}; foreach ($n in $clientCounts) { $rate[$n] = & $median $aggregate[$n] }
    $serverRate = & $median $serverSingle
    $cmdletRate = & $median $cmdletSingle
    $lines = @(
        '## Server (Start-CkServer)'
        ''
        ("Generated {0} model ({1:N0} parameters, ChatML), context 512 per request, {2} threads, {3} generated tokens per request " -f $Preset, $summary.ParameterCount, $Threads, $GenerateTokens) +
        ("(temperature 0.8, a different seed per client), medians of {0} rounds; clients stream server-sent events over loopback HTTP. " -f $Rounds) +
        ("Load average when the run started: {0}. Written by tests/bench/Server.Bench.ps1 on {1:yyyy-MM-dd}." -f $load, (Get-Date))
        ''
        '| concurrent streamed clients | aggregate generation tokens/s | vs 1 client |'
        '|---|---|---|'
    )
    foreach ($n in $clientCounts) { $lines += ('| {0} | {1:N1} | {2:N2}x |' -f $n, $rate[$n], ($rate[$n] / [Math]::Max($rate[1], 1e-9))) }
    $lines += @(
        ''
        ('Time to first token with 4 concurrent clients ({0} requests): p50 {1:N0} ms, p99 {2:N0} ms.' -f $firstToken4.Count, (Get-Percentile $firstToken4 50), (Get-Percentile $firstToken4 99))
        ''
        ('Single client, completion tokens per second of wall time (prompt included): server {0:N1}, Invoke-CkCompletion {1:N1}: **{2:N2}x**.' -f $serverRate, $cmdletRate, ($serverRate / [Math]::Max($cmdletRate, 1e-9)))
        ''
        ('The first Start-CkServer of the process (ASP.NET Core loaded into the engine''s context, Kestrel bound) took {0:N0} ms.' -f $startMs)
    )
    $lines | ForEach-Object { Write-Host $_ }
    Set-BenchmarkSection -Marker 'Server' -Lines $lines
}
finally {
    Stop-CkServer -ErrorAction SilentlyContinue
    Get-CkModel | Remove-CkModel -Confirm:$false
    Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction Ignore
}
