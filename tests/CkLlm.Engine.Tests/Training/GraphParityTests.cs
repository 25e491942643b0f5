using CkLlm.Engine.Training;
using Xunit.Abstractions;

namespace CkLlm.Engine.Tests.Training;

[Collection("Training")]
public class GraphParityTests(TrainingFixture fixture, ITestOutputHelper output)
{
    internal static (double MaxDiff, double Spread) Compare(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        double maxDiff = 0, mean = expected.Average(v => (double)v), variance = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs(expected[i] - actual[i]));
            variance += (expected[i] - mean) * (expected[i] - mean);
        }
        return (maxDiff, Math.Sqrt(variance / expected.Length));
    }

    [Theory]
    [InlineData("tiny")]
    [InlineData("gqa")]
    public void GraphLogitsEqualLlamaCppLogits(string which)
    {
        var model = which == "tiny" ? fixture.TinyModel : fixture.GqaModel;
        var tokens = LlamaCppEvaluator.Tokenize(model, "The storm loaf contains caraway, smoked salt and a spoon of lighthouse honey. Mira Quill keeps the slate board.");
        Assert.True(tokens.Length > 20, $"{tokens.Length} tokens");

        var expected = LlamaCppEvaluator.Logits(model, null, tokens);
        using var graph = new LlamaGraphModel(model);
        var actual = graph.ComputeLogits(tokens);

        var (maxDiff, spread) = Compare(expected, actual);
        output.WriteLine($"{which}: {tokens.Length} tokens, max |diff| {maxDiff:E2}, logit spread {spread:E2}");
        Assert.True(maxDiff < 1e-4 * Math.Max(1, spread) && maxDiff < 1e-3, $"max |diff| {maxDiff:E2}, logit spread {spread:E2}");
        // A graph that ignored positions or attention would differ by far more than the tolerance.
        Assert.True(spread > 100 * maxDiff, $"logit spread {spread:E2} is not large against the tolerance ({maxDiff:E2})");
    }
}
