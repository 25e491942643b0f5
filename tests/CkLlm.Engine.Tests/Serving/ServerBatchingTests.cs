using CkLlm.Engine.Inference;
using CkLlm.Engine.Model;
using CkLlm.Engine.Model.Generation;
using CkLlm.Server.Serving;

namespace CkLlm.Engine.Tests.Serving;

/// <summary>The batch runner itself: requests queued together decode in the same llama.cpp steps, and its counters
/// (CkServer.Batching) say so.</summary>
public sealed class ServerBatchingTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("ckllm-batching-tests-").FullName;

    [Fact]
    public async Task Requests_queued_together_share_each_decode_and_the_counters_account_for_every_token()
    {
        var path = Path.Combine(_directory, "tiny.gguf");
        ModelGenerator.Generate(path, new ModelGenerationOptions { Preset = ModelPreset.Tiny, Seed = 3 });
        using var model = LoadedModel.Load(path, new ModelLoadOptions { Name = "tiny", ContextSize = 256 });
        var counters = new BatchingCounters();
        using var runner = new BatchedModelRunner(model, slots: 4, counters);
        // Queued before the loop has its context (creating it takes far longer than queuing four requests), so all
        // four are taken at the first step; min_p 0 and no EOS bias: each runs to max_tokens unless it samples EOS.
        string[] prompts = ["one two three", "a b", "the quick brown fox", "x"];
        var streams = prompts.Select((p, i) => Collect(runner.StreamAsync(new CompletionRequest { Prompt = p, MaxTokens = 16, Temperature = 0.9f, Seed = (uint)i + 1 }, CancellationToken.None))).ToArray();
        var results = await Task.WhenAll(streams);

        var statistics = counters.Snapshot("tiny");
        var generatedByRequests = results.Sum(r => r.CompletionTokens);
        // Every completion token but each request's last is decoded once (the last needs no decode).
        Assert.Equal(generatedByRequests - results.Count(r => r.CompletionTokens > 0 && r.FinishReason == FinishReason.Length), statistics.GeneratedTokens);
        Assert.Equal(results.Sum(r => r.PromptTokens) + statistics.GeneratedTokens, statistics.DecodedTokens);
        Assert.True(statistics.MeanGeneratingSequences > 2, $"{statistics.MeanGeneratingSequences:F2} sequences per step: the requests did not decode together.");
        Assert.True(statistics.Decode > TimeSpan.Zero);
    }

    private static async Task<CompletionResult> Collect(IAsyncEnumerable<CompletionChunk> chunks)
    {
        await foreach (var chunk in chunks) if (chunk.Result is { } result) return result;
        throw new InvalidOperationException("The stream ended without a result.");
    }

    public void Dispose()
    {
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}
