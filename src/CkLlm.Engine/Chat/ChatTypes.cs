using CkLlm.Engine.Inference;
using CkLlm.Engine.Rag;

namespace CkLlm.Engine.Chat;

/// <summary>How a new chat is set up.</summary>
public sealed record ChatOptions
{
    /// <summary>The chat's name in the session; default: chat1, chat2, ...</summary>
    public string? Name { get; init; }

    /// <summary>The system message, kept at the start of the conversation for its whole life.</summary>
    public string? System { get; init; }

    /// <summary>A knowledge-base directory: every turn retrieves passages for a standalone version of the message and
    /// the reply cites them [n] (the default system message is then RAG's).</summary>
    public string? KnowledgeBase { get; init; }

    /// <summary>When the history outgrows the context, summarise the dropped turns with the model instead of just
    /// dropping them (the summary travels in the system message).</summary>
    public bool Summarize { get; init; }

    /// <summary>Keep the llama.cpp sequence between turns (false: every turn re-evaluates the whole history in a
    /// fresh context, for comparison).</summary>
    public bool ReuseState { get; init; } = true;
}

/// <summary>One message sent to a chat, and how to answer it.</summary>
public sealed record ChatTurnRequest
{
    public required string Message { get; init; }

    /// <summary>Sampling, MaxTokens and stop strings of the reply.</summary>
    public SamplingOptions Sampling { get; init; } = new();

    /// <summary>Where grounded chats retrieve passages (the cmdlet leases the chat's knowledge base for the call);
    /// null for an ungrounded chat.</summary>
    public IRagRetriever? Retriever { get; init; }

    /// <summary>Passages retrieved per turn.</summary>
    public int Top { get; init; } = 5;

    /// <summary>Search mode for grounded turns: Hybrid, Vector or Keyword.</summary>
    public string Mode { get; init; } = "Hybrid";

    /// <summary>Passages below this score are not used.</summary>
    public double MinScore { get; init; }

    /// <summary>Grounded turns: only passages whose metadata has these values.</summary>
    public IReadOnlyDictionary<string, string>? Filter { get; init; }
}

/// <summary>One exchange of a chat: the user's message and the model's reply, with what it cost.</summary>
public sealed record ChatTurn
{
    public required string Chat { get; init; }
    /// <summary>1 for the first turn of the chat.</summary>
    public required int Number { get; init; }
    public required string Message { get; init; }
    /// <summary>The reply (partial when FinishReason is Cancelled).</summary>
    public required string Text { get; init; }
    public required string Model { get; init; }
    /// <summary>Tokens of the whole prompt the reply was generated from (system, history, this message).</summary>
    public int PromptTokens { get; init; }
    /// <summary>Prompt tokens evaluated for this turn; the rest came from the chat's kept KV cache.</summary>
    public int EvaluatedTokens { get; init; }
    /// <summary>Prompt tokens reused from the kept cache (PromptTokens - EvaluatedTokens).</summary>
    public int CachedPromptTokens { get; init; }
    public int CompletionTokens { get; init; }
    public double TokensPerSecond { get; init; }
    public TimeSpan TimeToFirstToken { get; init; }
    public TimeSpan Duration { get; init; }
    public FinishReason FinishReason { get; init; }
    /// <summary>Earlier turns dropped from the history before this one so the prompt fits the context.</summary>
    public int DroppedTurns { get; init; }
    /// <summary>True when dropped turns were summarised into the system message (-Summarize).</summary>
    public bool Summarized { get; init; }
    /// <summary>Grounded chats: the question retrieval searched for (rewritten by the model from the recent turns).</summary>
    public string? StandaloneQuestion { get; init; }
    /// <summary>Grounded chats: the numbered passages this turn's prompt carried.</summary>
    public IReadOnlyList<RagCitation> Citations { get; init; } = [];
    /// <summary>Passage numbers the reply cites that exist.</summary>
    public IReadOnlyList<int> CitedNumbers { get; init; } = [];
    /// <summary>Numbers in [n] markers that match no passage.</summary>
    public IReadOnlyList<int> UnknownCitations { get; init; } = [];
    public DateTimeOffset Time { get; init; } = DateTimeOffset.Now;

    public override string ToString() => Text;
}

/// <summary>A streamed piece of a reply. The final chunk has empty text and carries the <see cref="Turn"/>; a chunk
/// with a <see cref="Notice"/> (turns dropped to fit) comes before the reply's text.</summary>
public sealed record ChatChunk(string Text, ChatTurn? Turn = null, string? Notice = null)
{
    public bool IsFinal => Turn is not null;
}

/// <summary>A chat saved by Export-CkChat: everything needed to continue it (Import-CkChat).</summary>
public sealed record ChatTranscript
{
    public const string CurrentFormat = "ckllm-chat/1";

    public string Format { get; init; } = CurrentFormat;
    public required string Name { get; init; }
    public required string Model { get; init; }
    public string? System { get; init; }
    public string? KnowledgeBase { get; init; }
    public bool Summarize { get; init; }
    /// <summary>The summary of dropped turns (-Summarize), if any.</summary>
    public string? Summary { get; init; }
    public DateTimeOffset Created { get; init; }
    /// <summary>The history the next turn's prompt starts from (user and assistant messages; the system message apart).</summary>
    public IReadOnlyList<ChatMessage> Messages { get; init; } = [];
    /// <summary>Every turn so far, also those dropped from the history.</summary>
    public IReadOnlyList<ChatTurn> Turns { get; init; } = [];
}

/// <summary>The chat's model has been removed from the session; the conversation cannot continue on it.</summary>
public sealed class ChatModelRemovedException(string chat, string model)
    : InvalidOperationException($"Chat '{chat}' uses model '{model}', which has been removed. Import the model again, then Export-CkChat and Import-CkChat -Model to continue the conversation on it.")
{
    public string Chat { get; } = chat;
    public string ModelName { get; } = model;
}

/// <summary>The chat has been removed (Remove-CkChat); it takes no more turns.</summary>
public sealed class ChatRemovedException(string chat)
    : ObjectDisposedException(chat, $"Chat '{chat}' has been removed. Import-CkChat a saved copy or start a New-CkChat.");

/// <summary>The message cannot fit the context window even with the whole history dropped.</summary>
public sealed class ChatBudgetException(string message) : ArgumentException(message);
