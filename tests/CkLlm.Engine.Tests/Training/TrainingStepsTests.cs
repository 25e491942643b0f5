using System.Globalization;
using CkLlm.Engine.Model.Generation;
using CkLlm.Engine.Training;
using CkLlm.Engine.Training.Native;
using Xunit.Abstractions;

namespace CkLlm.Engine.Tests.Training;

/// <summary>Graphs built once per shape must train exactly like graphs rebuilt every step, and gradient accumulation
/// like one larger batch.</summary>
[Collection("Training")]
public class TrainingStepsTests(TrainingFixture fixture, ITestOutputHelper output)
{
    private FineTuneOptions Options(string name) => new()
    {
        ModelPath = fixture.GqaModel,
        OutputPath = fixture.NewPath(name),
        Texts = [TrainingFixture.Facts],
        Method = FineTuneMethod.Full,
        Epochs = 3,
        ContextLength = 32,
        BatchSize = 4,
        ValidationSplit = 0.2,
        LearningRate = 3e-3f,
        MeasurePerplexity = false,
    };

    private void AssertSameLosses(FineTuneResult expected, FineTuneResult actual, double tolerance)
    {
        output.WriteLine($"train {string.Join(" ", expected.TrainLoss.Select(l => l.ToString("F5")))} vs {string.Join(" ", actual.TrainLoss.Select(l => l.ToString("F5")))}");
        output.WriteLine($"validation {string.Join(" ", expected.ValidationLoss.Select(l => l.ToString("F5")))} vs {string.Join(" ", actual.ValidationLoss.Select(l => l.ToString("F5")))}");
        Assert.Equal(expected.TrainLoss.Count, actual.TrainLoss.Count);
        for (int i = 0; i < expected.TrainLoss.Count; i++)
            Assert.True(Math.Abs(expected.TrainLoss[i] - actual.TrainLoss[i]) <= tolerance * expected.TrainLoss[i], $"epoch {i + 1}: {expected.TrainLoss[i]} vs {actual.TrainLoss[i]}");
        for (int i = 0; i < expected.ValidationLoss.Count; i++)
            Assert.True(Math.Abs(expected.ValidationLoss[i] - actual.ValidationLoss[i]) <= tolerance * expected.ValidationLoss[i], $"validation {i + 1}: {expected.ValidationLoss[i]} vs {actual.ValidationLoss[i]}");
        // The losses moved: equal trajectories of a run that learns nothing would prove nothing.
        Assert.True(actual.ValidationLoss[^1] < actual.ValidationLoss[0] - 0.05 || actual.TrainLoss[^1] < actual.TrainLoss[0] - 0.2,
            "training did not change the loss");
    }

    [Theory]
    [InlineData(FineTuneMethod.Full)]
    [InlineData(FineTuneMethod.Lora)]
    public void ReusedGraphsTrainLikeGraphsRebuiltEveryStep(FineTuneMethod method)
    {
        var rebuilt = FineTuner.Run(Options($"rebuilt-{method}.gguf") with { Method = method, RebuildGraphs = true });
        var reused = FineTuner.Run(Options($"reused-{method}.gguf") with { Method = method });
        AssertSameLosses(rebuilt, reused, 1e-3);
        Assert.Equal(rebuilt.Steps, reused.Steps);
    }

    [Fact]
    public void AGraphAllocatedAgainAfterALargerOneComputesTheSameLoss()
    {
        // The scheduler's compute buffer grows for the larger batch; the small batch's graph must not keep pointers
        // into the buffer it had before.
        var windows = TrainingData.Build(fixture.TinyModel, [TrainingFixture.Facts], [], 32);
        using var model = new LlamaGraphModel(fixture.TinyModel);
        using var lora = new LoraWeights(model.Graph, model.Backend, 4, 8, LoraTargets.Default, seed: 0);
        using var steps = new ReusedGraphSteps(model, lora, lora.Parameters.ToList());
        var small = windows.Take(1).ToList();
        steps.Train([windows.Skip(1).Take(2).ToList()], 1e-3f, 0);
        // The backward graph multiplies matrices with mul_mat (out_prods rewritten), so the parity test above covers it.
        Assert.True(steps.Rewrites.OutProdsAsMulMats > 0);
        // LoRA's pairs lie back to back: one AdamW node updates them all (the parity test above covers its updates).
        Assert.True(steps.FusedOptimizer);
        var first = steps.Evaluate(small).Loss;
        var large = steps.Evaluate(windows.Take(8).ToList()).Loss;
        var again = steps.Evaluate(small).Loss;
        output.WriteLine($"small {first:F6}, large {large:F6}, small again {again:F6}");
        Assert.True(first > 1, $"loss {first}");
        Assert.Equal(first, again, 5);
    }

    [Theory]
    [InlineData(FineTuneMethod.Lora)]
    [InlineData(FineTuneMethod.Full)]
    public void RewrittenProductsGiveTheGradientsOfGgmlsOwnGraph(FineTuneMethod method)
    {
        var batch = TrainingData.Build(fixture.GqaModel, [TrainingFixture.Facts], [], 32).Take(4).ToList();
        var (plain, plainRewrites, plainLoss, plainWritten) = Gradients(method, batch, rewriteProducts: false);
        var (rewritten, rewrites, forwardLoss, written) = Gradients(method, batch, rewriteProducts: true);
        output.WriteLine($"{method}: {rewrites}, {written} of {rewritten.Count} accumulators written instead of added to");
        Assert.Equal(0, plainRewrites.Total);
        // ggml's graph adds every gradient into its cleared accumulator; the rewritten one writes them (GradientWrites).
        Assert.Equal(0, plainWritten);
        Assert.True(written > 0);
        // Each rule ran: long out_prods as mul_mats, and for LoRA its rank-r products the other way round.
        Assert.True(rewrites.OutProdsAsMulMats > 0, rewrites.ToString());
        if (method == FineTuneMethod.Lora)
        {
            Assert.True(rewrites.NarrowMulMatsAsOutProds > 0, rewrites.ToString());
            Assert.True(rewrites.NarrowOutProdsTransposed > 0, rewrites.ToString());
        }
        // The forward products changed kernels too: the loss is the same.
        Assert.True(forwardLoss > 1, $"loss {forwardLoss}");
        Assert.Equal(plainLoss, forwardLoss, 4);
        Assert.Equal(plain.Count, rewritten.Count);
        double largest = plain.Values.Max(g => g.Max(MathF.Abs));
        Assert.True(largest > 1e-4, "the gradients are all zero: nothing was compared");
        foreach (var (name, expected) in plain)
        {
            var actual = rewritten[name];
            double worst = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
            Assert.True(worst <= 1e-4 * largest, $"{name}: gradients differ by {worst} (largest gradient {largest})");
        }
    }

    [Fact]
    public void FullStepsKeepTheTransposedWeightsEqualToTheUpdatedWeights()
    {
        // The input gradients read a persistent Wᵀ, written again after every AdamW step: a stale copy would give the
        // gradients of the previous step's weights.
        var windows = TrainingData.Build(fixture.GqaModel, [TrainingFixture.Facts], [], 32);
        using var model = new LlamaGraphModel(fixture.GqaModel);
        var parameters = FineTuner.TrainableParameters(model, null);
        using var steps = new ReusedGraphSteps(model, null, parameters);
        var copies = steps.TransposedCopies;
        Assert.Equal(model.Graph.ProjectionWeights().Distinct().Count(), copies.Count);
        var before = copies.Keys.ToDictionary(w => w, LoraWeights.Get);
        steps.Train([windows.Take(2).ToList()], 1e-2f, 0);
        steps.Train([windows.Skip(2).Take(2).ToList()], 1e-2f, 0);
        foreach (var (weight, copy) in copies)
        {
            var w = LoraWeights.Get(weight);
            var transposed = LoraWeights.Get(copy);
            Assert.NotEqual(before[weight], w);
            long columns = Ggml.Shape(weight)[0], rows = Ggml.Shape(weight)[1];
            Assert.Equal([rows, columns, 1, 1], Ggml.Shape(copy));
            for (long r = 0; r < rows; r++)
                for (long c = 0; c < columns; c++)
                    if (transposed[c * rows + r] != w[r * columns + c])
                        Assert.Fail($"{Ggml.NameOf(weight)}[{r},{c}] is {w[r * columns + c]}, its transposed copy holds {transposed[c * rows + r]}");
        }
    }

    [Fact]
    public void ALoraStepComputesNoGradientOfAFrozenWeight()
    {
        var lora = TrainingBenchmark.ProfileSteps(fixture.TinyModel, TrainingFactsTwice, FineTuneMethod.Lora, contextLength: 32, batchSize: 2, threads: 1, repeats: 1);
        var full = TrainingBenchmark.ProfileSteps(fixture.TinyModel, TrainingFactsTwice, FineTuneMethod.Full, contextLength: 32, batchSize: 2, threads: 1, repeats: 1);
        foreach (var o in lora.ByOp()) output.WriteLine($"{o.Phase} {o.Op} {o.Operand}: {o.Nodes} nodes, {o.Milliseconds:F2} ms");
        double Part(StepProfile p, string name) => p.Parts().Single(x => x.Part == name).Milliseconds;
        // Full computes weight gradients and the token embedding's (get_rows back into [width, vocabulary]); LoRA
        // neither, only its own products (and the get_rows back of the scored rows, an activation gradient).
        bool EmbeddingGradient(OpTime o) => o.Op == "GET_ROWS_BACK" && o.Shapes.EndsWith($",{ModelPreset.Tiny.VocabularySize}]", StringComparison.Ordinal);
        Assert.True(Part(full, "backward: weight gradients") > 0);
        Assert.Contains(full.Ops, EmbeddingGradient);
        Assert.Equal(0, Part(lora, "backward: weight gradients"));
        Assert.DoesNotContain(lora.Ops, EmbeddingGradient);
        Assert.True(Part(lora, "backward: LoRA products") > 0);
        Assert.True(Part(lora, "backward: input gradients through weights") > 0);
        Assert.True(lora.ForwardTokensPerSecond > 0 && lora.TrainTokensPerSecond > 0);
    }

    [Fact]
    public void LoraScalesItsRankRIntermediateNotTheProjectionsOutput()
    {
        // (alpha / r) is applied to A x (r rows), forward and backward, not to B (A x) (a projection's width).
        var lora = TrainingBenchmark.ProfileSteps(fixture.TinyModel, TrainingFactsTwice, FineTuneMethod.Lora, contextLength: 32, batchSize: 2, threads: 1, repeats: 1);
        var scales = lora.Ops.Where(o => o.Op == "SCALE").ToList();
        foreach (var o in scales) output.WriteLine($"{o.Phase} {o.Shapes}: {o.Nodes} nodes");
        Assert.Contains(scales, o => o.Phase == "forward");
        Assert.Contains(scales, o => o.Phase == "backward");
        int rank = new FineTuneOptions { ModelPath = "", OutputPath = "" }.Rank;
        foreach (var o in scales)
            Assert.True(o.Shapes.Split("-> [")[1].StartsWith($"{rank},", StringComparison.Ordinal), $"{o.Phase} SCALE {o.Shapes}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TheBenchmarksRunRateShowsTheSetupAndTheFirstStepApart(bool rebuildGraphs)
    {
        var run = TrainingBenchmark.MeasureTraining(fixture.TinyModel, TrainingFactsTwice, FineTuneMethod.Lora, rebuildGraphs, contextLength: 32, batchSize: 2, steps: 3, threads: 1);
        output.WriteLine($"{run}: setup {run.SetupSeconds * 1000:F1} ms, first step {run.FirstStepSeconds * 1000:F1} ms, steady {run.SteadyTokensPerSecond:F0} tok/s");
        Assert.Equal(3, run.Steps);
        Assert.True(run.SetupSeconds > 0 && run.FirstStepSeconds > 0, "the one-time parts were not measured");
        Assert.True(double.IsFinite(run.SteadyTokensPerSecond) && run.SteadyTokensPerSecond > 0);
        Assert.True(double.IsFinite(run.TokensPerSecond) && run.TokensPerSecond > 0);
    }

    /// <summary>Wide enough that every buffer of a Full step holds whole 2 MB pages.</summary>
    private static readonly ModelPreset Wide = new("Wide", 256, 1, 4, 2, 1024, 2048, 256);

    [Fact]
    public unsafe void EveryLargeBufferOfAFullStepIsAdvisedForHugePages()
    {
        if (!Directory.Exists("/sys/kernel/mm/transparent_hugepage")) return; // a kernel without THP: nothing to advise
        var path = fixture.NewPath("wide.gguf");
        ModelGenerator.Generate(path, new ModelGenerationOptions { Preset = Wide, Seed = 4, Corpus = TrainingFixture.Facts });
        var windows = TrainingData.Build(path, [TrainingFixture.Facts + " " + TrainingFixture.Facts], [], 64);
        using var model = new LlamaGraphModel(path, 1);
        var parameters = FineTuner.TrainableParameters(model, null);
        using var steps = new ReusedGraphSteps(model, null, parameters);
        steps.Train([windows.Take(4).ToList()], 1e-3f, 0);
        var buffers = new Dictionary<string, IntPtr>
        {
            ["weights"] = model.Graph.TokenEmbedding,
            ["gradient accumulators"] = steps.Accumulators.Values.First(),
            ["transposed weights"] = steps.TransposedCopies.Values.First(),
            ["compute buffer"] = steps.ForwardNodes().First(n => ((GgmlTensor*)n)->Op != 0 && ((GgmlTensor*)n)->ViewSrc == IntPtr.Zero),
        };
        foreach (var (what, tensor) in buffers)
        {
            var buffer = ((GgmlTensor*)tensor)->Buffer;
            long start = (long)Ggml.ggml_backend_buffer_get_base(buffer), size = (long)Ggml.ggml_backend_buffer_get_size(buffer);
            long page = (start + (2L << 20) - 1) & ~((2L << 20) - 1);
            output.WriteLine($"{what}: {size >> 10} KB at {start:x}");
            Assert.True(page + (2L << 20) <= start + size, $"the {what} ({size >> 10} KB) holds no whole 2 MB page: the test model is too small");
            Assert.Contains("hg", MappingFlags(page));
        }
    }

    /// <summary>The VmFlags of the mapping holding <paramref name="address"/> in /proc/self/smaps ("hg": MADV_HUGEPAGE).</summary>
    private static string[] MappingFlags(long address)
    {
        bool inside = false;
        foreach (var line in File.ReadLines("/proc/self/smaps"))
        {
            var range = line.Split(' ')[0].Split('-');
            if (range.Length == 2 && long.TryParse(range[0], NumberStyles.HexNumber, null, out var from) && long.TryParse(range[1], NumberStyles.HexNumber, null, out var to))
                inside = address >= from && address < to;
            else if (inside && line.StartsWith("VmFlags:", StringComparison.Ordinal))
                return line[8..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        }
        throw new InvalidOperationException($"No mapping holds {address:x}.");
    }

    private static string TrainingFactsTwice => TrainingFixture.Facts + "\n" + TrainingFixture.Facts;

    /// <summary>One batch's gradients by parameter name, from fresh weights (LoRA's B random too, so every LoRA
    /// product carries a gradient), and the forward-only loss of the same graph.</summary>
    private (Dictionary<string, float[]> Gradients, ProductRewrites Rewrites, double Loss, int Written) Gradients(FineTuneMethod method, List<TrainingWindow> batch, bool rewriteProducts)
    {
        using var model = new LlamaGraphModel(fixture.GqaModel);
        using var lora = method == FineTuneMethod.Lora ? new LoraWeights(model.Graph, model.Backend, 4, 8, LoraTargets.All, seed: 3) : null;
        var parameters = FineTuner.TrainableParameters(model, lora);
        var random = new Random(5);
        if (lora is not null)
            foreach (var p in parameters)
                LoraWeights.Set(p, Enumerable.Range(0, (int)Ggml.ggml_nelements(p)).Select(_ => (float)(random.NextDouble() - 0.5) * 0.2f).ToArray());
        using var steps = new ReusedGraphSteps(model, lora, parameters, rewriteProducts);
        // Twice: the accumulators hold the first call's gradients when the second one runs, and must not add up.
        steps.Gradients(batch);
        var gradients = steps.Gradients(batch);
        var loss = steps.Evaluate(batch).Loss;
        return (gradients.ToDictionary(kv => Ggml.NameOf(kv.Key), kv => kv.Value), steps.Rewrites, loss, steps.WrittenAccumulators);
    }

    [Fact]
    public void AccumulatingTwoBatchesOfTwoTrainsLikeOneBatchOfFour()
    {
        var single = FineTuner.Run(Options("batch4.gguf"));
        var accumulated = FineTuner.Run(Options("batch2x2.gguf") with { BatchSize = 2, AccumulationSteps = 2 });
        Assert.Equal(single.Steps, accumulated.Steps);
        // Means of two half-batch means differ from the pooled mean only where windows differ in length.
        AssertSameLosses(single, accumulated, 2e-2);
    }
}
