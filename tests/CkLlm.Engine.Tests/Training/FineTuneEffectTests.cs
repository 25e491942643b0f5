using CkLlm.Engine.Training;
using Xunit.Abstractions;

namespace CkLlm.Engine.Tests.Training;

/// <summary>
/// Training must change what llama.cpp itself computes: perplexity measured through LLamaSharp (independent of the
/// trainer) drops at least 5x, and greedy completion continues a trained sentence that the base model does not.
/// </summary>
[Collection("Training")]
public class FineTuneEffectTests(TrainingFixture fixture, ITestOutputHelper output)
{
    // The text's first sentence, so the prompt (BOS + opening words) is exactly how the sentence was seen in training.
    private const string Opening = "The lighthouse of Varnholm was built";
    private const string Continuation = "1743";

    private void Report(FineTuneResult result) =>
        output.WriteLine($"{result.Method}: loss {string.Join(" ", result.TrainLoss.Select(l => l.ToString("F2")))}; " +
                         $"ppl {result.PerplexityBefore:F1} -> {result.PerplexityAfter:F1}; {result.TokensPerSecond:F0} tok/s; " +
                         $"{result.Duration.TotalSeconds:F1} s; peak {result.PeakMemory / 1e6:F0} MB");

    [Fact]
    public void LoraAdapterLowersLlamaCppPerplexityAndRecallsASentence()
    {
        var adapter = fixture.NewPath("facts-lora.gguf");
        var result = FineTuner.Run(new FineTuneOptions
        {
            ModelPath = fixture.TinyModel,
            OutputPath = adapter,
            Texts = [TrainingFixture.Facts],
            Rank = 16,
            Alpha = 16,
            // A generated model's output projection is tiny (std 0.02), so the adapter also adapts it.
            LoraTargets = [.. LoraTargets.Default, LoraTargets.Output],
            Epochs = 40,
            ContextLength = 32,
            BatchSize = 1,
            LearningRate = 3e-3f,
            MeasurePerplexity = false,
        });
        Report(result);
        Assert.Equal(adapter, result.AdapterPath);
        Assert.True(result.TrainLoss[^1] < result.TrainLoss[0] / 2, "training loss did not fall");

        var before = LlamaCppEvaluator.MeasurePerplexity(fixture.TinyModel, null, TrainingFixture.Facts, 33).Perplexity;
        var after = LlamaCppEvaluator.MeasurePerplexity(fixture.TinyModel, adapter, TrainingFixture.Facts, 33).Perplexity;
        output.WriteLine($"llama.cpp perplexity {before:F1} -> {after:F1}");
        Assert.True(after * 5 <= before, $"perplexity {before:F2} -> {after:F2}");

        var tuned = LlamaCppEvaluator.GreedyComplete(fixture.TinyModel, adapter, Opening, 8);
        var baseline = LlamaCppEvaluator.GreedyComplete(fixture.TinyModel, null, Opening, 8);
        output.WriteLine($"with adapter: '{tuned}'; base: '{baseline}'");
        Assert.Contains(Continuation, tuned);
        Assert.DoesNotContain(Continuation, baseline);
    }

    [Fact]
    public void FullFineTuneLowersLlamaCppPerplexityAndRecallsASentence()
    {
        var model = fixture.NewPath("facts-full.gguf");
        var result = FineTuner.Run(new FineTuneOptions
        {
            ModelPath = fixture.TinyModel,
            OutputPath = model,
            Texts = [TrainingFixture.Facts],
            Method = FineTuneMethod.Full,
            Epochs = 25,
            ContextLength = 32,
            BatchSize = 1,
            LearningRate = 3e-3f,
            MeasurePerplexity = false,
        });
        Report(result);
        Assert.Equal(model, result.ModelPath);
        Assert.Null(result.AdapterPath);

        var before = LlamaCppEvaluator.MeasurePerplexity(fixture.TinyModel, null, TrainingFixture.Facts, 33).Perplexity;
        var after = LlamaCppEvaluator.MeasurePerplexity(model, null, TrainingFixture.Facts, 33).Perplexity;
        output.WriteLine($"llama.cpp perplexity {before:F1} -> {after:F1}");
        Assert.True(after * 5 <= before, $"perplexity {before:F2} -> {after:F2}");

        var tuned = LlamaCppEvaluator.GreedyComplete(model, null, Opening, 8);
        var baseline = LlamaCppEvaluator.GreedyComplete(fixture.TinyModel, null, Opening, 8);
        output.WriteLine($"tuned: '{tuned}'; base: '{baseline}'");
        Assert.Contains(Continuation, tuned);
        Assert.DoesNotContain(Continuation, baseline);
    }
}
