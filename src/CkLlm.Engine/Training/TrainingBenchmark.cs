using System.Diagnostics;
using LLama;
using LLama.Common;
using LLama.Native;

namespace CkLlm.Engine.Training;

/// <summary>Forward-pass throughput of the training graph against llama.cpp's prompt processing on the same model.</summary>
public sealed record ForwardBenchmark(string ModelPath, int Tokens, int Repeats, double GraphTokensPerSecond, double LlamaCppTokensPerSecond);

/// <summary>
/// Training throughput of one run: <see cref="TokensPerSecond"/> over the whole run as a user pays it, the trainer's
/// setup (<see cref="SetupSeconds"/>) and every optimizer step, the first included (<see cref="FirstStepSeconds"/>:
/// the reused path builds and allocates its graphs there); <see cref="SteadyTokensPerSecond"/> over the steps after
/// the first, the rate a long run tends to.
/// </summary>
public sealed record TrainingThroughput(string Method, bool RebuildGraphs, int Steps, int ContextLength, int BatchSize, double TokensPerSecond, long PeakMemory)
{
    public double SetupSeconds { get; init; }
    public double FirstStepSeconds { get; init; }
    public double SteadyTokensPerSecond { get; init; }
}

public static class TrainingBenchmark
{
    /// <summary>
    /// Trains <paramref name="steps"/> optimizer steps on <paramref name="text"/> (which must give at least
    /// steps x batch windows) and reports tokens/s of the whole run (trainer setup and every step; see
    /// <see cref="TrainingThroughput"/>), with the graphs reused (the default) or rebuilt every step (the
    /// previous path), so both are measured in one process on the same data.
    /// </summary>
    public static TrainingThroughput MeasureTraining(string modelPath, string text, FineTuneMethod method, bool rebuildGraphs,
        int contextLength = 128, int batchSize = 2, int steps = 4, int threads = 0)
    {
        var output = Path.Combine(Path.GetTempPath(), $"ckllm-trainbench-{Guid.NewGuid():N}.gguf");
        try
        {
            var result = FineTuner.Run(new FineTuneOptions
            {
                ModelPath = modelPath, OutputPath = output, Texts = [text], Method = method, RebuildGraphs = rebuildGraphs,
                MaxSteps = steps, Epochs = 1, ContextLength = contextLength, BatchSize = batchSize, Threads = threads,
                MeasurePerplexity = false, PlotLoss = false, MetricsPath = "",
            });
            if (result.Steps < steps || steps < 2) throw new ArgumentException($"The text gives only {result.Steps} steps of {batchSize} windows; {Math.Max(2, steps)} were asked for.", nameof(text));
            // Every step trains batchSize full windows; the history's tokens/s is cumulative, so its first entry is the
            // first step's rate.
            double tokens = result.TokensPerSecond * result.TrainSeconds, stepTokens = tokens / result.Steps;
            double firstStep = stepTokens / result.History[0].TokensPerSecond;
            return new TrainingThroughput(method.ToString(), rebuildGraphs, result.Steps, contextLength, batchSize,
                tokens / (result.TrainerSetupSeconds + result.TrainSeconds), result.PeakMemory)
            {
                SetupSeconds = result.TrainerSetupSeconds, FirstStepSeconds = firstStep,
                SteadyTokensPerSecond = (tokens - stepTokens) / (result.TrainSeconds - firstStep),
            };
        }
        finally
        {
            File.Delete(output);
            try { Directory.Delete(output + ".checkpoint", true); } catch (IOException) { }
        }
    }

    /// <summary>
    /// The current path's step against a forward-only pass over the same batches (same model, threads and process),
    /// and a node-by-node breakdown of a step: the ceiling a step is measured against (an ideal LoRA step costs about
    /// two forward passes, a Full one three). <paramref name="text"/> must give at least <paramref name="batchSize"/>
    /// windows of <paramref name="contextLength"/> tokens (up to three batches are used).
    /// </summary>
    public static StepProfile ProfileSteps(string modelPath, string text, FineTuneMethod method,
        int contextLength = 128, int batchSize = 2, int threads = 0, int repeats = 3) =>
        StepProfiler.Measure(modelPath, text, method, contextLength, batchSize, threads, repeats);

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
