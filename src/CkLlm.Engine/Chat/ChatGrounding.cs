using System.Text;
using CkLlm.Engine.Inference;

namespace CkLlm.Engine.Chat;

/// <summary>
/// The chat's side calls to its model: rewriting a follow-up into a standalone question for retrieval ("and how tall
/// is it?" becomes "How tall is Kilauea?"), and summarising turns dropped from the history (-Summarize). Both are
/// greedy single calls (they go through the model's prompt cache, not the chat's sequence, so the chat's kept
/// tokens stay those of the conversation).
/// </summary>
public static class ChatGrounding
{
    /// <summary>Recent exchanges the rewrite sees.</summary>
    public const int RewriteTurns = 3;

    /// <summary>Characters of each earlier message the rewrite and the summary see.</summary>
    public const int MessageExcerpt = 600;

    public const string SummaryHeading = "Summary of the earlier conversation:";

    public const string RewriteSystem =
        "You rewrite the user's last message as one standalone search question that can be understood without the conversation: " +
        "replace pronouns and references with the things they refer to. Reply with the question only, on one line.";

    public const string SummarySystem =
        "You summarise a conversation in at most five sentences: the facts stated, the user's goals and any decisions. Reply with the summary only.";

    /// <summary>The last message as a standalone question; the message itself when the model gives nothing usable.</summary>
    public static string RewriteQuestion(IChatModel model, IReadOnlyList<ChatMessage> history, string message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(history);
        var recent = RecentExchanges(history, RewriteTurns);
        if (recent.Count == 0) return message;
        var prompt = new StringBuilder("Conversation:\n");
        AppendTranscript(prompt, recent);
        prompt.Append("\nLast message: ").Append(message).Append("\n\nStandalone question:");
        return CleanQuestion(Ask(model, RewriteSystem, prompt.ToString(), 64, cancellationToken)) ?? message;
    }

    /// <summary>A summary of <paramref name="dropped"/> messages, folding in the summary of turns dropped before.</summary>
    public static string Summarize(IChatModel model, string? previousSummary, IReadOnlyList<ChatMessage> dropped, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(model);
        var prompt = new StringBuilder();
        if (!string.IsNullOrWhiteSpace(previousSummary)) prompt.Append("Earlier summary: ").Append(previousSummary).Append("\n\n");
        prompt.Append("Conversation:\n");
        AppendTranscript(prompt, dropped);
        var summary = Ask(model, SummarySystem, prompt.ToString(), 160, cancellationToken).Trim();
        return summary.Length > 0 ? summary : previousSummary ?? "(earlier turns were dropped)";
    }

    /// <summary>A greedy single call (through the model's prompt cache, not the chat's sequence).</summary>
    private static string Ask(IChatModel model, string system, string prompt, int maxTokens, CancellationToken cancellationToken) =>
        model.Complete(new CompletionRequest { System = system, Prompt = prompt, Temperature = 0, MaxTokens = maxTokens }, cancellationToken).Text;

    /// <summary>The first non-empty line, without a "Standalone question:" label or quotes; null when nothing is left.</summary>
    internal static string? CleanQuestion(string text)
    {
        var line = text.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.Length > 0);
        if (line is null) return null;
        const string label = "Standalone question:";
        if (line.StartsWith(label, StringComparison.OrdinalIgnoreCase)) line = line[label.Length..].Trim();
        line = line.Trim('"', '\'', '“', '”').Trim();
        return line.Length > 0 ? line : null;
    }

    private static List<ChatMessage> RecentExchanges(IReadOnlyList<ChatMessage> history, int turns)
    {
        var start = history.Count;
        var users = 0;
        while (start > 0 && users < turns)
        {
            start--;
            if (history[start].Role == "user") users++;
        }
        return history.Skip(start).ToList();
    }

    private static void AppendTranscript(StringBuilder text, IEnumerable<ChatMessage> messages)
    {
        foreach (var message in messages)
        {
            var content = message.Content.Length > MessageExcerpt ? message.Content[..MessageExcerpt] + " ..." : message.Content;
            text.Append(message.Role == "user" ? "User: " : "Assistant: ").Append(content.ReplaceLineEndings(" ")).Append('\n');
        }
    }
}
