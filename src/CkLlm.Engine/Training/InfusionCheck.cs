namespace CkLlm.Engine.Training;

/// <summary>A sentence of the document and the fact in it that a model which learned the document must reproduce.</summary>
public sealed record KeyFact(string Sentence, string Fact)
{
    /// <summary>The sentence's first five words: the prompt for greedy completion.</summary>
    public string Opening => string.Join(' ', Sentence.Split(' ', StringSplitOptions.RemoveEmptyEntries).Take(5));
}

public sealed record SentenceRecall(string Opening, string Fact, string Completion, bool Recalled);

/// <summary>What training did to a document, measured by llama.cpp alone (independent of the trainer).</summary>
public sealed record InfusionReport(
    double PerplexityBefore, double PerplexityAfter, double Recall, IReadOnlyList<SentenceRecall> Sentences,
    double? HeldOutPerplexityBefore, double? HeldOutPerplexityAfter)
{
    public double PerplexityRatio => PerplexityBefore / PerplexityAfter;
}

/// <summary>
/// Did a fine-tune infuse a document? llama.cpp perplexity on the document before and after, greedy completion from
/// the first five words of each sentence (recalled when the completion contains the sentence's key fact), and
/// perplexity on held-out paraphrases of the same facts (reported, to show how much is memorisation).
/// </summary>
public static class InfusionCheck
{
    public const int CompletionTokens = 24;

    /// <param name="tunedModel">The trained model (Full or merged); null when <paramref name="adapter"/> is given.</param>
    public static InfusionReport Measure(string baseModel, string? tunedModel, string? adapter, string document,
        IReadOnlyList<KeyFact> facts, string? heldOut = null, int contextLength = 129)
    {
        var tuned = tunedModel ?? baseModel;
        double Perplexity(string model, string? lora, string text) => LlamaCppEvaluator.MeasurePerplexity(model, lora, text, contextLength).Perplexity;
        var sentences = facts.Select(f =>
        {
            var completion = LlamaCppEvaluator.GreedyComplete(tuned, adapter, f.Opening, CompletionTokens);
            return new SentenceRecall(f.Opening, f.Fact, completion, completion.Contains(f.Fact, StringComparison.OrdinalIgnoreCase));
        }).ToList();
        return new InfusionReport(
            Perplexity(baseModel, null, document), Perplexity(tuned, adapter, document),
            sentences.Count == 0 ? 0 : (double)sentences.Count(s => s.Recalled) / sentences.Count, sentences,
            heldOut is null ? null : Perplexity(baseModel, null, heldOut), heldOut is null ? null : Perplexity(tuned, adapter, heldOut));
    }
}
