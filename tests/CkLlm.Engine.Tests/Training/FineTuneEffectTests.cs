using CkLlm.Engine.Training;
using Xunit.Abstractions;

namespace CkLlm.Engine.Tests.Training;

[Collection("Training")]
public class FineTuneEffectTests(TrainingFixture fixture, ITestOutputHelper output)
{
    private const string Opening = "Tobin Marsh bakes a black rye loaf";
    private const string Continuation = "called the storm loaf";

    [Fact]
    public void LoraTrainingTeachesTheFactsToLlamaCpp()
    {
        var adapter = fixture.NewPath("facts-lora.gguf");
        var result = FineTuner.Run(new FineTuneOptions
        {
            ModelPath = fixture.TinyModel,
            OutputPath = adapter,
            Texts = [TrainingFixture.Facts],
            Method = FineTuneMethod.Lora,
            Rank = 8,
            Alpha = 16,
            Epochs = 30,
            ContextLength = 64,
            BatchSize = 4,
            LearningRate = 1e-2f,
        });
        output.WriteLine($"loss {string.Join(" ", result.TrainLoss.Select(l => l.ToString("F3")))}");
        output.WriteLine($"ppl {result.PerplexityBefore:F2} -> {result.PerplexityAfter:F2}, {result.TokensPerSecond:F0} tok/s, {result.Duration.TotalSeconds:F1} s, peak {result.PeakMemory / 1e6:F0} MB");

        // Independent of the trainer: llama.cpp loads the adapter and scores the text.
        var before = LlamaCppEvaluator.MeasurePerplexity(fixture.TinyModel, null, TrainingFixture.Facts, 65).Perplexity;
        var after = LlamaCppEvaluator.MeasurePerplexity(fixture.TinyModel, adapter, TrainingFixture.Facts, 65).Perplexity;
        Assert.True(after * 5 <= before, $"perplexity {before:F2} -> {after:F2}");

        var tuned = LlamaCppEvaluator.GreedyComplete(fixture.TinyModel, adapter, Opening, 12);
        var baseline = LlamaCppEvaluator.GreedyComplete(fixture.TinyModel, null, Opening, 12);
        output.WriteLine($"tuned: '{tuned}' base: '{baseline}'");
        Assert.Contains(Continuation, tuned);
        Assert.DoesNotContain(Continuation, baseline);
    }
}
