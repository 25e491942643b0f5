namespace CkLlm.Engine.Inference;

/// <summary>Why a completion ended.</summary>
public enum FinishReason
{
    /// <summary>The model ended its answer (end-of-generation token, grammar complete) or a stop string appeared.</summary>
    Stop,
    /// <summary>MaxTokens (or the context window) was reached.</summary>
    Length,
    /// <summary>The caller cancelled (Ctrl+C).</summary>
    Cancelled,
}

/// <summary>One chat message; Role is "system", "user" or "assistant".</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>
/// How to sample: the one record every front end (Invoke-CkCompletion, Invoke-CkRag, a served endpoint) maps its
/// generation parameters to. <see cref="CompletionRequest"/> extends it with what to complete.
/// </summary>
public record SamplingOptions
{
    public const int DefaultMaxTokens = 256;
    public const float DefaultTemperature = 0.8f;
    public const int DefaultTopK = 40;
    public const float DefaultTopP = 0.95f;
    public const float DefaultMinP = 0.05f;
    public const float DefaultRepeatPenalty = 1.0f;

    public int MaxTokens { get; init; } = DefaultMaxTokens;

    /// <summary>0 means greedy (always the most likely token): deterministic.</summary>
    public float Temperature { get; init; } = DefaultTemperature;

    public int TopK { get; init; } = DefaultTopK;
    public float TopP { get; init; } = DefaultTopP;
    public float MinP { get; init; } = DefaultMinP;

    /// <summary>1 disables the penalty.</summary>
    public float RepeatPenalty { get; init; } = DefaultRepeatPenalty;

    /// <summary>Sampling seed; the same seed, model and request reproduce the output exactly. Null: random.</summary>
    public uint? Seed { get; init; }

    /// <summary>Generation ends before any of these strings (they may span tokens; they are not part of Text).</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];

    /// <summary>Throws when a value is out of its range (checked before any native call).</summary>
    public void Validate()
    {
        if (MaxTokens < 0) throw new ArgumentOutOfRangeException(nameof(MaxTokens), "MaxTokens must not be negative.");
        if (Temperature < 0) throw new ArgumentOutOfRangeException(nameof(Temperature), "Temperature must not be negative.");
        if (TopK < 0) throw new ArgumentOutOfRangeException(nameof(TopK), "TopK must not be negative.");
        if (TopP is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(TopP), "TopP must be between 0 and 1.");
        if (MinP is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(MinP), "MinP must be between 0 and 1.");
        if (RepeatPenalty <= 0) throw new ArgumentOutOfRangeException(nameof(RepeatPenalty), "RepeatPenalty must be positive.");
        if (Stop.Any(string.IsNullOrEmpty)) throw new ArgumentException("Stop strings must not be empty.", nameof(Stop));
    }
}

/// <summary>What to complete and how to sample. Set either <see cref="Prompt"/> or <see cref="Messages"/>.</summary>
public sealed record CompletionRequest : SamplingOptions
{
    public CompletionRequest() { }

    /// <summary>A request sampling as <paramref name="sampling"/> says; set Prompt/Messages with an initializer.</summary>
    public CompletionRequest(SamplingOptions sampling) : base(sampling ?? throw new ArgumentNullException(nameof(sampling))) { }

    /// <summary>Raw text continued as is (no chat template).</summary>
    public string? Prompt { get; init; }

    /// <summary>A chat, formatted with the model's own chat template (or the documented fallback).</summary>
    public IReadOnlyList<ChatMessage>? Messages { get; init; }

    /// <summary>A system message put before <see cref="Messages"/> (or before Prompt, which then becomes a user message).</summary>
    public string? System { get; init; }

    /// <summary>GBNF grammar (root rule "root") the output must match.</summary>
    public string? Grammar { get; init; }

    /// <summary>A JSON schema the output must match (converted to GBNF by <see cref="JsonSchemaGrammar"/>).</summary>
    public string? JsonSchema { get; init; }

    /// <summary>
    /// Reuse the longest prompt prefix a recent call on the same model left in a kept KV cache (llama.cpp server's
    /// cache_prompt), so only the rest is evaluated. The output is the same either way; false gives a fresh context.
    /// </summary>
    public bool CachePrompt { get; init; } = true;

    /// <summary>True when the request is a chat (Messages or System set).</summary>
    public bool IsChat => Messages is { Count: > 0 } || !string.IsNullOrEmpty(System);
}

/// <summary>The outcome of a completion.</summary>
public sealed record CompletionResult
{
    public required string Model { get; init; }
    /// <summary>The exact text the model saw (after the chat template, for chats).</summary>
    public required string Prompt { get; init; }
    public required string Text { get; init; }
    public required int PromptTokens { get; init; }
    /// <summary>Prompt tokens taken from a kept KV cache instead of being evaluated (a chat's earlier turns, or the
    /// shared prefix of a recent call on the same model); PromptTokens - CachedPromptTokens were evaluated.</summary>
    public int CachedPromptTokens { get; init; }
    public required int CompletionTokens { get; init; }
    /// <summary>Generation speed (tokens after the prompt).</summary>
    public required double TokensPerSecond { get; init; }
    /// <summary>Prompt-processing speed.</summary>
    public required double PromptTokensPerSecond { get; init; }
    public required FinishReason FinishReason { get; init; }
    /// <summary>"template" (the model's own chat template), "fallback" (ChatML-like text) or "none" (raw prompt).</summary>
    public required string ChatFormat { get; init; }
    public required TimeSpan Duration { get; init; }
    /// <summary>From the start of the call to the first sampled token (prompt evaluation included).</summary>
    public TimeSpan TimeToFirstToken { get; init; }
}

/// <summary>
/// A piece of streamed output. Text chunks arrive as tokens are generated; the last chunk has empty text and carries
/// the <see cref="Result"/>.
/// </summary>
/// <param name="Text">New text (may be empty while a multi-byte character or possible stop string is pending).</param>
/// <param name="CompletionTokens">Tokens generated so far.</param>
/// <param name="Result">Set on the final chunk only.</param>
public sealed record CompletionChunk(string Text, int CompletionTokens, CompletionResult? Result = null)
{
    public bool IsFinal => Result is not null;
}
