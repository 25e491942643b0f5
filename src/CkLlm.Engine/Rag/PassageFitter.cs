namespace CkLlm.Engine.Rag;

/// <summary>The prompt chosen by <see cref="PassageFitter"/>.</summary>
public sealed record FittedPrompt(string Prompt, int PromptTokens, IReadOnlyList<PromptPassage> Passages, int Dropped, int Trimmed, int PromptLimit);

/// <summary>
/// Fits passages into the context window: prompt tokens + MaxTokens + safety margin must not exceed the context size.
/// Passages go in rank order; the first one that does not fit whole is trimmed at a line (or else word) boundary, or
/// dropped when too little of it would remain, and every later one is dropped. Every candidate prompt is rendered
/// completely (chat template included) and counted with the model's own tokenizer, so the result never overflows.
/// </summary>
public static class PassageFitter
{
    /// <summary>A trimmed passage (other than the first) shorter than this many tokens is dropped instead.</summary>
    public const int MinTrimmedTokens = 16;

    /// <param name="passages">Passages in rank order.</param>
    /// <param name="render">The full prompt text for a set of passages (system + user message through the chat template).</param>
    /// <param name="countTokens">Token count of a prompt with the model's tokenizer.</param>
    /// <exception cref="RagBudgetException">Even the prompt without any passage (or with only a scrap of the first) does not fit.</exception>
    public static FittedPrompt Fit(IReadOnlyList<RagPassage> passages, Func<IReadOnlyList<PromptPassage>, string> render,
        Func<string, int> countTokens, int contextSize, int maxTokens, int safetyMargin)
    {
        ArgumentNullException.ThrowIfNull(passages);
        ArgumentNullException.ThrowIfNull(render);
        ArgumentNullException.ThrowIfNull(countTokens);
        if (contextSize <= 0) throw new ArgumentOutOfRangeException(nameof(contextSize), "The context size must be positive.");
        if (maxTokens < 0) throw new ArgumentOutOfRangeException(nameof(maxTokens), "MaxTokens must not be negative.");
        if (safetyMargin < 0) throw new ArgumentOutOfRangeException(nameof(safetyMargin), "The safety margin must not be negative.");

        var limit = contextSize - maxTokens - safetyMargin;
        var included = new List<PromptPassage>();
        var barePrompt = render(included);
        var bareTokens = countTokens(barePrompt);
        if (bareTokens > limit)
            throw new RagBudgetException(
                $"The prompt without any passage needs {bareTokens} tokens, but the context window ({contextSize} tokens) minus MaxTokens ({maxTokens}) " +
                $"and the safety margin ({safetyMargin}) leaves {Math.Max(limit, 0)}. Shorten the question or the system/template text, lower -MaxTokens, " +
                "or load the model with a larger -ContextSize.");

        var prompt = barePrompt;
        var tokens = bareTokens;
        var trimmed = 0;
        for (var i = 0; i < passages.Count; i++)
        {
            var whole = new PromptPassage(i + 1, passages[i], passages[i].Text, Trimmed: false);
            var candidate = render([.. included, whole]);
            var candidateTokens = countTokens(candidate);
            if (candidateTokens <= limit)
            {
                included.Add(whole);
                prompt = candidate;
                tokens = candidateTokens;
                continue;
            }

            var cut = Trim(passages[i], i + 1, included, render, countTokens, limit);
            if (cut is not null && (i == 0 || countTokens(cut.Value.Passage.Text) >= MinTrimmedTokens))
            {
                included.Add(cut.Value.Passage);
                prompt = cut.Value.Prompt;
                tokens = cut.Value.Tokens;
                trimmed = 1;
            }
            break;
        }

        if (passages.Count > 0 && included.Count == 0)
            throw new RagBudgetException(
                $"Not even the first words of the best passage fit: the prompt without passages already needs {bareTokens} of the {Math.Max(limit, 0)} tokens " +
                $"left by the context window ({contextSize}) minus MaxTokens ({maxTokens}) and the safety margin ({safetyMargin}). Lower -MaxTokens or load the model with a larger -ContextSize.");
        return new FittedPrompt(prompt, tokens, included, passages.Count - included.Count, trimmed, limit);
    }

    /// <summary>The longest prefix of the passage, cut after a word, that fits; preferring a line end when it keeps most of it.</summary>
    private static (PromptPassage Passage, string Prompt, int Tokens)? Trim(RagPassage passage, int number, List<PromptPassage> included,
        Func<IReadOnlyList<PromptPassage>, string> render, Func<string, int> countTokens, int limit)
    {
        var text = passage.Text;
        var wordCuts = new List<int>();
        for (var i = 1; i < text.Length; i++)
        {
            if (char.IsWhiteSpace(text[i]) && !char.IsWhiteSpace(text[i - 1])) wordCuts.Add(i);
        }
        if (wordCuts.Count == 0) return null;

        (PromptPassage Passage, string Prompt, int Tokens)? Try(int cut)
        {
            var trimmed = passage with { LineEnd = TrimmedLineEnd(passage, text[..cut]) };
            var candidate = new PromptPassage(number, trimmed, text[..cut], Trimmed: true);
            var prompt = render([.. included, candidate]);
            var tokens = countTokens(prompt);
            return tokens <= limit ? (candidate, prompt, tokens) : null;
        }

        // Binary search over word ends: longer prefixes cost more tokens (near enough monotonic; each result is counted exactly).
        (PromptPassage Passage, string Prompt, int Tokens)? best = null;
        int low = 0, high = wordCuts.Count - 1, bestIndex = -1;
        while (low <= high)
        {
            var mid = (low + high) / 2;
            var attempt = Try(wordCuts[mid]);
            if (attempt is not null) { best = attempt; bestIndex = mid; low = mid + 1; }
            else high = mid - 1;
        }
        if (best is null) return null;

        // A line end keeping at least 60% of the best word cut reads better and keeps line ranges exact.
        var wordCut = wordCuts[bestIndex];
        var lineCut = text.LastIndexOf('\n', wordCut - 1);
        while (lineCut > 0 && char.IsWhiteSpace(text[lineCut - 1])) lineCut--;
        if (lineCut > 0 && lineCut >= wordCut * 0.6 && lineCut < wordCut)
        {
            var atLine = Try(lineCut);
            if (atLine is not null) return atLine;
        }
        return best;
    }

    /// <summary>The last source line a trimmed passage still covers, when the passage text maps line for line onto the source.</summary>
    private static int? TrimmedLineEnd(RagPassage passage, string kept)
    {
        if (passage.LineStart is not { } start || passage.LineEnd is not { } end) return passage.LineEnd;
        var lines = passage.Text.TrimEnd('\n', '\r').Split('\n').Length;
        if (lines != end - start + 1) return end; // the chunk text does not map line for line: keep the stored range
        return start + kept.TrimEnd('\n', '\r').Split('\n').Length - 1;
    }
}
