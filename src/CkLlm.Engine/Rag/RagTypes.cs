using CkLlm.Engine.Inference;

namespace CkLlm.Engine.Rag;

/// <summary>A retrieved passage offered to the model (one knowledge-base hit).</summary>
public sealed record RagPassage
{
    public required string Source { get; init; }
    public required string Text { get; init; }
    public string? Heading { get; init; }
    public int? LineStart { get; init; }
    public int? LineEnd { get; init; }
    public int? Page { get; init; }
    public double Score { get; init; }
}

/// <summary>A passage as numbered in the prompt; the answer's [n] markers refer to <see cref="Number"/>.</summary>
public sealed record RagCitation
{
    public required int Number { get; init; }
    public required string Source { get; init; }
    public string? Heading { get; init; }
    public int? LineStart { get; init; }
    public int? LineEnd { get; init; }
    public int? Page { get; init; }
    public double Score { get; init; }
    /// <summary>The passage text the model saw (possibly trimmed to fit the context window).</summary>
    public required string Text { get; init; }
    /// <summary>True when the passage was cut short to fit the token budget.</summary>
    public bool Trimmed { get; init; }

    /// <summary>"12-30" for a line range, a single line number, or null.</summary>
    public string? Lines => LineStart is { } s ? (LineEnd is { } e && e != s ? $"{s}-{e}" : $"{s}") : null;

    /// <summary>Where the passage came from: source plus line range or page.</summary>
    public string Location => Page is { } p ? $"{Source} p. {p}" : LineStart is not null ? $"{Source}:{Lines}" : Source;

    public override string ToString() => $"[{Number}] {Location}";
}

/// <summary>What to ask and how to retrieve and generate.</summary>
public sealed record RagRequest
{
    public required string Question { get; init; }

    /// <summary>Passages retrieved (before the token budget may drop some).</summary>
    public int Top { get; init; } = 5;

    /// <summary>Search mode name as Search-CkKnowledge takes it: Hybrid, Vector or Keyword.</summary>
    public string Mode { get; init; } = "Hybrid";

    /// <summary>Metadata key/value pairs every passage must carry.</summary>
    public IReadOnlyDictionary<string, string>? Filter { get; init; }

    /// <summary>Passages scoring below this are ignored; none left means NoKnowledge (the model is not called).</summary>
    public double MinScore { get; init; }

    /// <summary>Replaces the default system instructions (<see cref="RagPromptBuilder.DefaultSystem"/>).</summary>
    public string? System { get; init; }

    /// <summary>Replaces the default user message; must contain {context} and {question}.</summary>
    public string? Template { get; init; }

    /// <summary>Sampling parameters and MaxTokens; its Prompt/System/Messages are ignored (RAG builds them).</summary>
    public CompletionRequest Generation { get; init; } = new();

    /// <summary>Tokens kept free on top of MaxTokens, so the prompt never fills the window exactly.</summary>
    public int SafetyMargin { get; init; } = 16;

    /// <summary>Build the prompt but do not call the model.</summary>
    public bool PromptOnly { get; init; }
}

/// <summary>The outcome of one RAG question (type name CkRagAnswer in PowerShell).</summary>
public sealed record RagAnswer
{
    public required string Question { get; init; }
    /// <summary>The model's answer; with NoKnowledge, a sentence saying nothing relevant was found; null with PromptOnly.</summary>
    public string? Answer { get; init; }
    /// <summary>The numbered passages the prompt carried.</summary>
    public IReadOnlyList<RagCitation> Citations { get; init; } = [];
    /// <summary>Passage numbers the answer cites that exist, in order of first mention.</summary>
    public IReadOnlyList<int> CitedNumbers { get; init; } = [];
    /// <summary>Numbers in [n] markers that match no passage (a hallucinated citation).</summary>
    public IReadOnlyList<int> UnknownCitations { get; init; } = [];
    /// <summary>True when no passage reached MinScore; the model was not called.</summary>
    public bool NoKnowledge { get; init; }
    public string? Model { get; init; }
    public int PromptTokens { get; init; }
    /// <summary>Prompt tokens reused from a recent call's KV cache on the same model (the system message and template
    /// header repeated questions share) instead of being evaluated.</summary>
    public int CachedPromptTokens { get; init; }
    public int CompletionTokens { get; init; }
    public double TokensPerSecond { get; init; }
    public double RetrievalMs { get; init; }
    public double GenerationMs { get; init; }
    /// <summary>The exact text the model saw (after its chat template).</summary>
    public string? Prompt { get; init; }
    /// <summary>"template" (model's own chat template), "fallback" (documented ChatML-like text).</summary>
    public string? ChatFormat { get; init; }
    public FinishReason? FinishReason { get; init; }
    /// <summary>Passages retrieved above MinScore.</summary>
    public int PassagesRetrieved { get; init; }
    /// <summary>Passages left out (and how many were trimmed) to fit the context window.</summary>
    public int PassagesDropped { get; init; }
    public int PassagesTrimmed { get; init; }

    /// <summary>The cited passages (those in <see cref="CitedNumbers"/>).</summary>
    public IReadOnlyList<RagCitation> CitedPassages => Citations.Where(c => CitedNumbers.Contains(c.Number)).ToArray();

    public override string ToString() => Answer ?? string.Empty;
}

/// <summary>A streamed piece of a RAG answer; the final chunk has empty text and carries the answer.</summary>
public sealed record RagChunk(string Text, RagAnswer? Answer = null)
{
    public bool IsFinal => Answer is not null;
}

/// <summary>The prompt cannot fit the model's context window (the question alone is too long, or MaxTokens too large).</summary>
public sealed class RagBudgetException(string message) : Exception(message);
