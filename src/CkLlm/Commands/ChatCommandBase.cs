using System.Management.Automation;
using CkLlm.Engine.Chat;
using CkLlm.Engine.Rag;

namespace CkLlm.Commands;

/// <summary>
/// The cmdlets that take chat turns (Invoke-CkChat, Enter-CkChat): the retrieval parameters of grounded chats come from
/// <see cref="QueryRetrievalCommandBase"/> (-KnowledgeBase, -Credential, -Top, -Filter, -Rerank, -Mode, -MinScore, declared
/// once for every retrieving cmdlet), the sampling parameters are bound as <see cref="SamplingParameters"/>, and one turn
/// runs with warnings, streamed text and engine errors handled alike.
/// </summary>
public abstract class ChatCommandBase : QueryRetrievalCommandBase, IDynamicParameters
{
    private readonly SamplingParameters _sampling = new();

    /// <summary>-Stream and the sampling parameters, as Invoke-CkCompletion takes them.</summary>
    public object GetDynamicParameters() => _sampling;

    protected bool Stream => _sampling.Stream;

    /// <summary>
    /// Sends <paramref name="message"/> to <paramref name="chat"/>, writing the reply as it comes with
    /// <paramref name="writeText"/> (null: not streamed). Returns the turn, or null after an engine error (written) or
    /// cancellation before any result.
    /// </summary>
    protected ChatTurn? RunTurn(ChatConversation chat, string message, Action<string>? writeText, CancellationToken cancellation)
    {
        if (chat.KnowledgeBase is null && KnowledgeBase is not null)
        {
            // Grounding decides the chat's system message and what its kept state holds, so it is chosen once, by New-CkChat.
            WriteError(new ErrorRecord(new InvalidOperationException(
                    $"Chat '{chat.Name}' is not grounded in a knowledge base; -KnowledgeBase only replaces a grounded chat's knowledge base for a turn. Start a grounded chat with New-CkChat -KnowledgeBase."),
                "ChatNotGrounded", ErrorCategory.InvalidOperation, chat.Name));
            return null;
        }
        var request = new ChatTurnRequest
        {
            Message = message,
            Sampling = _sampling.ToSampling(MyInvocation),
            Top = Top,
            Mode = Mode,
            MinScore = MinScore,
            Filter = ToDictionary(Filter),
            // The knowledge base is leased for the rest of the command (see CkCmdlet.OpenKnowledgeBase).
            Retriever = chat.KnowledgeBase is { } grounding ? OpenRetriever(grounding) : null,
        };
        ChatTurn? turn = null;
        var streamed = false;
        PipelineStoppedException? stopped = null;
        // Once the pipeline stops (Ctrl+C), writing throws: stop writing but let the turn end (the engine sees the
        // cancellation at the next token), so the partial reply is recorded in the chat as in Enter-CkChat.
        void Write(Action write)
        {
            if (stopped is not null) return;
            try { write(); }
            catch (PipelineStoppedException e) { stopped = e; }
        }
        var answered = TryEngine(() =>
        {
            try
            {
                foreach (var chunk in chat.Stream(request, cancellation))
                {
                    if (chunk.Turn is not null) { turn = chunk.Turn; break; }
                    if (chunk.Notice is not null) Write(() => WriteWarning(chunk.Notice));
                    if (writeText is not null && chunk.Text.Length > 0)
                    {
                        Write(() => writeText(chunk.Text));
                        streamed = true;
                    }
                    Write(this.WriteNativeLog);
                }
            }
            finally { Write(this.WriteNativeLog); }
        }, chat.Name);
        if (stopped is not null) throw stopped;
        if (streamed) EndStreamedText();
        if (!answered || turn is null) return null;
        WriteVerbose($"Turn {turn.Number}: {turn.PromptTokens} prompt tokens ({turn.CachedPromptTokens} from the kept state, {turn.EvaluatedTokens} evaluated), " +
            $"{turn.CompletionTokens} generated ({turn.TokensPerSecond:N1}/s), first token after {turn.TimeToFirstToken.TotalMilliseconds:N0} ms.");
        if (turn.UnknownCitations.Count > 0)
            WriteWarning($"The reply cites [{string.Join("], [", turn.UnknownCitations)}], but the prompt had only {turn.Citations.Count} passage(s).");
        return turn;
    }
}
