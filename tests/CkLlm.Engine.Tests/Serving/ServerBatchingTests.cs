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

    [Fact]
    public async Task An_idle_batch_loop_gives_its_OpenMP_worker_threads_back()
    {
        var path = Path.Combine(_directory, "tiny.gguf");
        ModelGenerator.Generate(path, new ModelGenerationOptions { Preset = ModelPreset.Tiny, Seed = 5 });
        // The loop thread is "CkLlm batch ompidle"; Linux keeps 15 characters of a thread's name.
        using var model = LoadedModel.Load(path, new ModelLoadOptions { Name = "ompidle", ContextSize = 256, Threads = 2 });
        const string LoopThread = "CkLlm batch omp";

        // How the workers are seen: libgomp starts them from the thread that decodes, and they inherit its name.
        const string ProbeThread = "ckllm-omp-probe";
        var seenBesideProbe = 0;
        var probe = new Thread(() =>
        {
            using var context = model.Weights.CreateContext(model.Parameters);
            var batch = new LLama.Native.LLamaBatch();
            batch.Add(model.Tokenize("one two", addBos: true)[0], 0, LLama.Native.LLamaSeqId.Zero, true);
            context.Decode(batch);
            seenBesideProbe = ThreadsNamed(ProbeThread) - 1;
        }) { Name = ProbeThread };
        probe.Start();
        probe.Join();
        Assert.Equal(1, seenBesideProbe); // two compute threads: the decoding thread and one OpenMP worker

        using var runner = new BatchedModelRunner(model, slots: 2, new BatchingCounters());
        var result = await Collect(runner.StreamAsync(new CompletionRequest { Prompt = "one two", MaxTokens = 8, Seed = 1 }, CancellationToken.None));
        Assert.True(result.CompletionTokens > 0 || result.FinishReason == FinishReason.Stop);

        // An idle loop's worker would keep libgomp counting more threads than CPUs, which throttles every barrier of
        // every decode in the process (OpenMpThreadPool). The loop goes idle right after handing out the result.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (ThreadsNamed(LoopThread) != 1 && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.Equal(1, ThreadsNamed(LoopThread));
    }

    /// <summary>Threads of this process whose (kernel) name is <paramref name="name"/>.</summary>
    private static int ThreadsNamed(string name) => Directory.GetDirectories("/proc/self/task").Count(task =>
    {
        try { return File.ReadAllText(Path.Combine(task, "comm")).TrimEnd('\n') == name; }
        catch (IOException) { return false; } // the thread ended meanwhile
    });

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
