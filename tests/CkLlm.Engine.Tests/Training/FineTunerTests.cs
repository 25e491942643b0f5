using CkLlm.Engine.Model.Generation;
using CkLlm.Engine.Training;
using Xunit.Abstractions;

namespace CkLlm.Engine.Tests.Training;

[Collection("Training")]
public class FineTunerTests(TrainingFixture fixture, ITestOutputHelper output)
{
    private FineTuneOptions Quick(string model, string outputName) => new()
    {
        ModelPath = model,
        OutputPath = fixture.NewPath(outputName),
        Texts = [TrainingFixture.Facts],
        Epochs = 2,
        ContextLength = 32,
        BatchSize = 2,
        LearningRate = 1e-2f,
        MeasurePerplexity = false,
    };

    [Fact]
    public void GraphWithTrainedAdapterEqualsLlamaCppWithTheAdapterLoaded()
    {
        var options = Quick(fixture.GqaModel, "gqa-lora.gguf") with { LoraTargets = [.. LoraTargets.Default, LoraTargets.Output] };
        var result = FineTuner.Run(options);
        var tokens = LlamaCppEvaluator.Tokenize(fixture.GqaModel, "Every spring the goats of Varnholm are counted by the keeper's daughter.");

        var baseLogits = LlamaCppEvaluator.Logits(fixture.GqaModel, null, tokens);
        var expected = LlamaCppEvaluator.Logits(fixture.GqaModel, result.AdapterPath, tokens);
        using var model = new LlamaGraphModel(fixture.GqaModel);
        using var lora = new LoraWeights(model.Graph, model.Backend, options.Rank, options.Alpha, options.LoraTargets!, seed: 0);
        lora.Load(result.AdapterPath!);
        var actual = model.ComputeLogits(tokens, lora);

        var (maxDiff, _) = GraphParityTests.Compare(expected, actual);
        var (adapterEffect, _) = GraphParityTests.Compare(baseLogits, expected);
        output.WriteLine($"adapter parity: max |diff| {maxDiff:E2}; the adapter moves logits by up to {adapterEffect:E2}");
        Assert.True(maxDiff < 1e-3, $"max |diff| {maxDiff:E2}");
        Assert.True(adapterEffect > 100 * maxDiff, $"the adapter barely changes llama.cpp's logits ({adapterEffect:E2})");
    }

    [Fact]
    public void MergedModelMatchesBasePlusAdapterInLlamaCpp()
    {
        var trained = FineTuner.Run(Quick(fixture.TinyModel, "merge-source.gguf"));
        var adapter = trained.AdapterPath!;
        var merged = fixture.NewPath("merged.gguf");
        using (var model = new LlamaGraphModel(fixture.TinyModel))
        using (var lora = new LoraWeights(model.Graph, model.Backend, 8, 16, trained.LoraTargets, seed: 0))
        {
            lora.Load(adapter);
            ModelWriter.Write(model, lora, merged, quantization: null);
        }
        var tokens = LlamaCppEvaluator.Tokenize(fixture.TinyModel, "Tobin Marsh bakes a black rye loaf called the storm loaf every Thursday.");
        var withAdapter = LlamaCppEvaluator.Logits(fixture.TinyModel, adapter, tokens);
        var fromMerged = LlamaCppEvaluator.Logits(merged, null, tokens);
        var baseLogits = LlamaCppEvaluator.Logits(fixture.TinyModel, null, tokens);
        var (maxDiff, _) = GraphParityTests.Compare(withAdapter, fromMerged);
        var (effect, _) = GraphParityTests.Compare(baseLogits, withAdapter);
        output.WriteLine($"merged vs adapter: {maxDiff:E2}; adapter effect {effect:E2}");
        Assert.True(maxDiff < 1e-3 && effect > 100 * maxDiff, $"merged differs by {maxDiff:E2} (effect {effect:E2})");
    }

    [Fact]
    public void ThirtyTwoThousandTokenVocabularyTrainsWithBatchBoundedLabels()
    {
        var preset = new ModelPreset("Vocab32k", 32, 1, 2, 1, 64, 128, 32000);
        var path = fixture.NewPath("vocab32k.gguf");
        ModelGenerator.Generate(path, new ModelGenerationOptions { Preset = preset, Seed = 3, Corpus = TrainingFixture.Facts });
        foreach (var method in new[] { FineTuneMethod.Lora, FineTuneMethod.Full })
        {
            var result = FineTuner.Run(Quick(path, $"vocab32k-{method}.gguf") with { Method = method, Epochs = 1, LearningRate = 1e-3f });
            output.WriteLine($"{method}: loss {result.TrainLoss[0]:F3}, peak {result.PeakMemory / 1e6:F0} MB, {result.TrainingTokens} tokens");
            // Untrained loss is ln(32000) = 10.37; dense labels for the whole dataset would not be needed to get it.
            Assert.InRange(result.TrainLoss[0], 9.5, 11.0);
            Assert.True(result.PeakMemory < 1_500_000_000, $"peak memory {result.PeakMemory}");
        }
    }

    [Fact]
    public void CancelledRunKeepsItsCheckpointAndResumes()
    {
        var options = Quick(fixture.TinyModel, "resume.gguf") with { Epochs = 3, ValidationSplit = 0.2 };
        using var cancellation = new CancellationTokenSource();
        var progress = new SynchronousProgress(p => { if (p.Phase == "epoch" && p.Epoch == 1) cancellation.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => FineTuner.Run(options, progress, cancellation.Token));
        Assert.False(File.Exists(options.OutputPath));
        Assert.True(File.Exists(Path.Combine(options.EffectiveCheckpointPath, "state.json")));

        var resumed = FineTuner.Run(options with { Resume = true });
        Assert.Equal(3, resumed.Epochs);
        Assert.Equal(3, resumed.TrainLoss.Count);
        Assert.Equal(3, resumed.ValidationLoss.Count);
        Assert.All(resumed.ValidationLoss, v => Assert.True(double.IsFinite(v) && v > 0));
        Assert.True(File.Exists(resumed.AdapterPath));

        // A checkpoint made for another configuration is refused instead of silently mixed in.
        Assert.Throws<InvalidOperationException>(() => FineTuner.Run(options with { Resume = true, Rank = 4, Overwrite = true }));
    }

    [Fact]
    public void QuantizedBaseTrainsLoraButRefusesFull()
    {
        var q8 = fixture.NewPath("tiny-q8.gguf");
        Assert.True(LLama.LLamaQuantizer.Quantize(fixture.TinyModel, q8, "Q8_0", 1));
        var tokens = LlamaCppEvaluator.Tokenize(q8, "Mira Quill keeps the slate board in the lamp room.");
        using (var model = new LlamaGraphModel(q8))
        {
            var (maxDiff, spread) = GraphParityTests.Compare(LlamaCppEvaluator.Logits(q8, null, tokens), model.ComputeLogits(tokens));
            Assert.True(maxDiff < 1e-3 && spread > 100 * maxDiff, $"Q8_0 parity {maxDiff:E2} (spread {spread:E2})");
        }
        var result = FineTuner.Run(Quick(q8, "q8-lora.gguf"));
        Assert.True(result.TrainLoss[^1] < result.TrainLoss[0]);
        Assert.Throws<NotSupportedException>(() => FineTuner.Run(Quick(q8, "q8-full.gguf") with { Method = FineTuneMethod.Full }));
    }

    [Fact]
    public void EarlyStoppingEndsARunWhoseValidationLossStopsImproving()
    {
        // A learning rate far too high makes the validation loss worse after the first epochs.
        var result = FineTuner.Run(Quick(fixture.TinyModel, "early.gguf") with
        {
            Epochs = 20, ValidationSplit = 0.3, EarlyStoppingPatience = 1, LearningRate = 0.5f,
            Schedule = LearningRateSchedule.Constant, WarmupFraction = 0,
        });
        output.WriteLine($"validation loss {string.Join(" ", result.ValidationLoss.Select(v => v.ToString("F2")))}");
        Assert.True(result.StoppedEarly);
        Assert.True(result.Epochs < 20, $"{result.Epochs} epochs");
        Assert.Equal(result.Epochs, result.ValidationLoss.Count);
        Assert.True(File.Exists(result.AdapterPath));
    }

    [Fact]
    public void BadInputIsRejectedBeforeAnyNativeCall()
    {
        var good = Quick(fixture.TinyModel, "bad.gguf");
        Assert.Throws<ArgumentException>(() => FineTuner.Run(good with { OutputPath = fixture.TinyModel }));
        Assert.Throws<FileNotFoundException>(() => FineTuner.Run(good with { ModelPath = fixture.NewPath("missing.gguf") }));
        Assert.Throws<ArgumentOutOfRangeException>(() => FineTuner.Run(good with { Epochs = -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => FineTuner.Run(good with { ValidationSplit = 1 }));
        Assert.Throws<ArgumentException>(() => FineTuner.Run(good with { Texts = [], Pairs = [] }));
        Assert.Throws<ArgumentException>(() => FineTuner.Run(good with { LoraTargets = ["attn_x"] }));
        var garbage = fixture.NewPath("garbage.gguf");
        File.WriteAllBytes(garbage, new byte[4096]);
        Assert.ThrowsAny<Exception>(() => new LlamaGraphModel(garbage));
        Assert.Throws<FileNotFoundException>(() => FineTuner.Run(good with { Resume = true, CheckpointPath = fixture.NewPath("none") }));
    }

    [Fact]
    public void LearningRateWarmsUpThenDecaysToTheFloor()
    {
        var o = new FineTuneOptions { ModelPath = "m", OutputPath = "o", LearningRate = 1e-2f, WarmupFraction = 0.1, Schedule = LearningRateSchedule.Cosine };
        Assert.True(FineTuner.LearningRate(o, 0, 100) < FineTuner.LearningRate(o, 9, 100));
        Assert.Equal(1e-2f, FineTuner.LearningRate(o, 10, 100), 5);
        Assert.Equal(1e-3f, FineTuner.LearningRate(o, 100, 100), 5);
        Assert.Equal(1e-2f, FineTuner.LearningRate(o with { Schedule = LearningRateSchedule.Constant }, 80, 100), 5);
        var linear = o with { Schedule = LearningRateSchedule.Linear };
        Assert.True(FineTuner.LearningRate(linear, 50, 100) > FineTuner.LearningRate(linear, 90, 100));
    }

    private sealed class SynchronousProgress(Action<FineTuneProgress> report) : IProgress<FineTuneProgress>
    {
        public void Report(FineTuneProgress value) => report(value);
    }
}
