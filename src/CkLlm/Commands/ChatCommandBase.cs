using System.Management.Automation;
using CkLlm.Engine.Chat;
using CkLlm.Engine.Rag;

namespace CkLlm.Commands;

/// <summary>
/// The cmdlets that take chat turns (Invoke-CkChat, Enter-CkChat): the sampling parameters, the grounded chats'
/// retrieval parameters, and one turn run with warnings, streamed text and engine errors handled alike.
/// </summary>
public abstract class ChatCommandBase : SamplingCommandBase
{
    /// <summary>Grounded chats: passages retrieved per turn.</summary>
    [Parameter]
    [ValidateRange(RetrievalParameters.MinTop, RetrievalParameters.MaxTop)]
    public int Top { get; set; } = RetrievalParameters.DefaultTop;

    /// <summary>Grounded chats: the search mode.</summary>
    [Parameter]
    [ValidateSet(typeof(SearchModeValues), IgnoreCase = true)]
    public string Mode { get; set; } = RetrievalParameters.DefaultMode;

    /// <summary>Grounded chats: passages scoring below this are not used.</summary>
    [Parameter]
    [ValidateMinScore]
    public double MinScore { get; set; }

    /// <summary>
    /// Sends <paramref name="message"/> to <paramref name="chat"/>, writing the reply as it comes with
    /// <paramref name="writeText"/> (null: not streamed). Returns the turn, or null after an engine error (written) or
    /// cancellation before any result.
    /// </summary>
    protected ChatTurn? RunTurn(ChatConversation chat, string message, Action<string>? writeText, CancellationToken cancellation)
    {
        var request = new ChatTurnRequest
        {
            Message = message,
            Sampling = Sampling(),
            Top = Top,
            Mode = Mode,
            MinScore = MinScore,
            // The knowledge base is leased for the rest of the command (see CkCmdlet.OpenKnowledgeBase).
            Retriever = chat.KnowledgeBase is { } directory ? new KnowledgeRagRetriever(OpenKnowledgeBase(directory, mustExist: true)) : null,
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
