using System.Diagnostics;
using LLama;
using LLama.Common;
using LLama.Native;

namespace CkLlm.Engine.Training;

/// <summary>Forward-pass throughput of the training graph against llama.cpp's prompt processing on the same model.</summary>
public sealed record ForwardBenchmark(string ModelPath, int Tokens, int Repeats, double GraphTokensPerSecond, double LlamaCppTokensPerSecond);

public static class TrainingBenchmark
{
    /// <summary>Runs both forward passes over the same <paramref name="tokens"/>-token window, best of <paramref name="repeats"/>.</summary>
    public static ForwardBenchmark MeasureForward(string modelPath, int tokens = 128, int repeats = 3, int threads = 0)
    {
        if (tokens < 2 || repeats < 1) throw new ArgumentOutOfRangeException(nameof(tokens), "Need at least 2 tokens and 1 repeat.");
        modelPath = Path.GetFullPath(modelPath);
        using var graph = new LlamaGraphModel(modelPath, threads);
        var random = new Random(1);
        var window = Enumerable.Range(0, tokens).Select(_ => random.Next(3, graph.Hyper.VocabularySize)).ToArray();
        double best = double.MaxValue;
        for (int i = 0; i < repeats; i++)
        {
            var watch = Stopwatch.StartNew();
            graph.ComputeLogits(window);
            best = Math.Min(best, watch.Elapsed.TotalSeconds);
        }
        double graphRate = tokens / best;

        var p = new ModelParams(modelPath)
        {
            ContextSize = (uint)tokens, BatchSize = (uint)tokens, UBatchSize = (uint)tokens, GpuLayerCount = 0,
            Threads = threads > 0 ? threads : Environment.ProcessorCount,
            BatchThreads = threads > 0 ? threads : Environment.ProcessorCount,
        };
        using var weights = LLamaWeights.LoadFromFile(p);
        using var context = weights.CreateContext(p);
        best = double.MaxValue;
        for (int i = 0; i < repeats; i++)
        {
            context.NativeHandle.MemoryClear();
            var batch = new LLamaBatch();
            // All positions produce logits, as in the training graph.
            for (int t = 0; t < tokens; t++) batch.Add((LLamaToken)window[t], t, LLamaSeqId.Zero, true);
            var watch = Stopwatch.StartNew();
            if (context.Decode(batch) != DecodeResult.Ok) throw new InvalidOperationException("llama.cpp decode failed.");
            best = Math.Min(best, watch.Elapsed.TotalSeconds);
        }
        return new ForwardBenchmark(modelPath, tokens, repeats, graphRate, tokens / best);
    }
}
