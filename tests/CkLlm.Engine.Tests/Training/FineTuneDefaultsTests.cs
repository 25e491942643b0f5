using CkLlm.Engine.Training;
using Xunit.Abstractions;

namespace CkLlm.Engine.Tests.Training;

/// <summary>Issue 13 item 2: with nothing but a model, a document and an output path, training infuses the document
/// (llama.cpp perplexity at least 5x lower, 80% of sentences completed with their key fact from five words).</summary>
[Collection("Training")]
public class FineTuneDefaultsTests(TrainingFixture fixture, ITestOutputHelper output)
{
    [Fact]
    public void PlanGivesATinyDocumentEnoughStepsAndKeepsExplicitEpochs()
    {
        var defaults = new FineTuneOptions { ModelPath = "m", OutputPath = "o" };
        var tiny = FineTunePlan.Resolve(defaults, trainWindows: 4, modelParameters: 5_000_000, outputUntied: true);
        Assert.Equal(FineTunePlan.MinimumDefaultSteps, tiny.TotalSteps);
        Assert.Equal(tiny.TotalSteps, tiny.Epochs * tiny.StepsPerEpoch);
        Assert.True(tiny.PlateauPatience > 0);
        Assert.Contains(LoraTargets.Output, tiny.LoraTargets);
        Assert.Equal(3e-3f, tiny.LearningRate);

        var large = FineTunePlan.Resolve(defaults, trainWindows: 40_000, modelParameters: 3_000_000_000, outputUntied: false);
        Assert.Equal(FineTunePlan.MaximumDefaultSteps, large.TotalSteps);
        Assert.DoesNotContain(LoraTargets.Output, large.LoraTargets);
        Assert.True(large.LearningRate < tiny.LearningRate);

        var explicitEpochs = FineTunePlan.Resolve(defaults with { Epochs = 3 }, trainWindows: 4, modelParameters: 5_000_000, outputUntied: true);
        Assert.Equal(3, explicitEpochs.TotalSteps);
        Assert.Equal(0, explicitEpochs.PlateauPatience);
        var full = FineTunePlan.Resolve(defaults with { Method = FineTuneMethod.Full }, 4, 5_000_000, true);
        Assert.True(full.LearningRate <= tiny.LearningRate);
        Assert.True(FineTunePlan.DefaultLearningRate(FineTuneMethod.Full, 3_000_000_000) < large.LearningRate);
    }

    [Theory]
    [InlineData(2, 0.3, 2)]
    [InlineData(2, 1.2, 1)]
    [InlineData(2, 40, 1)]
    [InlineData(8, 2.9, 6)]
    public void DefaultThreadsUseOnlyIdleCores(int cores, double load, int expected) =>
        Assert.Equal(expected, LlamaGraphModel.DefaultThreads(cores, load));

    [Fact]
    public void LossPlateauStopsOnAFlatLossAndWhenTheTextIsLearned()
    {
        var flat = new LossPlateau(5);
        Assert.DoesNotContain(true, new[] { 3.0, 2.5, 2.0, 1.5, 1.0 }.Select(flat.Add));
        Assert.Contains(true, Enumerable.Repeat(1.0, 60).Select(flat.Add));
        var learned = new LossPlateau(1000);
        Assert.Contains(true, Enumerable.Range(0, 40).Select(i => 1.0 / (i + 1) / (i + 1)).Select(learned.Add));
        Assert.DoesNotContain(true, Enumerable.Repeat(1.0, 50).Select(new LossPlateau(0).Add));
        // Not before the minimum number of steps (the first half of the budget), unless the text is learned.
        Assert.DoesNotContain(true, Enumerable.Repeat(1.0, 99).Select(new LossPlateau(5, minimumSteps: 100).Add));
    }

    [Fact]
    public void SentenceWindowsStartEverySentenceAfterBosLikeARecallPrompt()
    {
        var stream = TrainingData.Build(fixture.TinyModel, [TrainingFixture.Facts], [], 128);
        var withSentences = TrainingData.Build(fixture.TinyModel, [TrainingFixture.Facts], [], 128, sentenceWindows: true);
        Assert.Equal(stream.Select(w => w.Tokens), withSentences.Take(stream.Count).Select(w => w.Tokens));
        var added = withSentences.Skip(stream.Count).ToList();
        // Every sentence but the first (the stream already starts there).
        Assert.Equal(TrainingFixture.KeyFacts.Count - 1, added.Count);
        for (int i = 0; i < added.Count; i++)
        {
            // BOS + the opening words, as InfusionCheck prompts (its last token may merge with what follows).
            var opening = TrainingData.Build(fixture.TinyModel, [TrainingFixture.KeyFacts[i + 1].Opening], [], 128).Single().Tokens;
            Assert.Equal(opening[..^1], added[i].Tokens[..(opening.Length - 1)]);
            Assert.True(added[i].Length is > 1 and <= 128);
            Assert.All(added[i].Scored, Assert.True);
        }
    }

    // A generated (random) Tiny model; the pretrained fixture below is Small. FineTune.Bench.ps1 proves the same
    // defaults through the cmdlet on a generated Small model and on a Small model it pretrains from scratch.
    // Before the sentence windows and the 3e-3 LoRA rate this measured 516 -> 129 perplexity (4x) and 0/18 recall.
    [Fact]
    public void DefaultsInfuseAShortDocumentIntoAGeneratedModel()
    {
        var result = InfuseWithDefaults(fixture.TinyModel, "tiny-defaults.gguf");
        // The metrics CSV carries the same numbers as the result.
        Assert.Equal(result.History, FineTuneMetricsWriter.Read(result.MetricsPath!), new MetricsComparer());
    }

    // The pretrained fixture: a Small model trained from scratch on /usr/share/common-licenses (cached in .build/).
    // Learned weights put mass on the corpus' words, so the invented facts have to displace what the model knows.
    // Measured under load: 600 steps, perplexity 2,172 -> 1.8 (1,230x), recall 17/18, held-out paraphrases 2,190 -> 1.8M
    // (memorisation). The old defaults (3 epochs at lr 1e-3: 6 steps) gave 2,192 -> 2,002 (1.1x) and 0/18.
    [Fact]
    public void DefaultsInfuseAShortDocumentIntoAPretrainedModel()
    {
        var pretrained = fixture.Pretrained;
        output.WriteLine($"pretrained: {pretrained.Report}");
        Assert.True(pretrained.Report.HeldOutPerplexityAfter < pretrained.Report.HeldOutPerplexityBefore / 2,
            "the fixture did not learn its corpus");
        InfuseWithDefaults(pretrained.Path, "pretrained-defaults.gguf");
    }

    /// <summary>Start-CkFineTune -Model m -Path facts -OutputPath out with nothing else (the cmdlet's defaults are the
    /// engine's), then the gate: llama.cpp perplexity on the document at least 5x lower and 80% of sentences completed
    /// with their key fact from their first five words. Held-out paraphrase perplexity is reported, not gated.</summary>
    private FineTuneResult InfuseWithDefaults(string model, string name)
    {
        var adapter = fixture.NewPath(name);
        var result = FineTuner.Run(new FineTuneOptions { ModelPath = model, OutputPath = adapter, Texts = [TrainingFixture.Facts], MeasurePerplexity = false });
        var report = InfusionCheck.Measure(model, null, result.AdapterPath, TrainingFixture.Facts, TrainingFixture.KeyFacts, TrainingFixture.Paraphrases);
        output.WriteLine($"{result.Steps} steps in {result.Duration.TotalSeconds:F0} s (stopped early: {result.StoppedEarly}), lr {result.LearningRate}, " +
                         $"{result.TokensPerSecond:F0} tok/s, loss {result.History[0].Loss:F2} -> {result.History[^1].Loss:F3}");
        output.WriteLine($"perplexity {report.PerplexityBefore:F1} -> {report.PerplexityAfter:F2} ({report.PerplexityRatio:F0}x); recall {report.Recall:P0}; " +
                         $"held-out paraphrases {report.HeldOutPerplexityBefore:F1} -> {report.HeldOutPerplexityAfter:F1}");
        foreach (var s in report.Sentences) output.WriteLine($"  [{(s.Recalled ? "x" : " ")}] {s.Opening} -> {s.Completion}");
        Assert.True(report.PerplexityRatio >= 5, $"perplexity {report.PerplexityBefore:F1} -> {report.PerplexityAfter:F1}");
        Assert.True(report.Recall >= 0.8, $"recall {report.Recall:P0}");
        return result;
    }

    private sealed class MetricsComparer : IEqualityComparer<FineTuneStepMetrics>
    {
        private static bool Near(double a, double b) => Math.Abs(a - b) <= 1e-5 * Math.Max(1, Math.Abs(a));
        public bool Equals(FineTuneStepMetrics? x, FineTuneStepMetrics? y) =>
            x is not null && y is not null && x.Step == y.Step && x.Epoch == y.Epoch && Near(x.Loss, y.Loss) && Near(x.LearningRate, y.LearningRate)
            && (x.ValidationLoss is null ? y.ValidationLoss is null : y.ValidationLoss is not null && Near(x.ValidationLoss.Value, y.ValidationLoss.Value));
        public int GetHashCode(FineTuneStepMetrics obj) => obj.Step;
    }
}
