using System.Management.Automation;
using CkLlm.Engine.Chat;
using CkLlm.Engine.Rag;

namespace CkLlm.Commands;

/// <summary>Sends a message to a chat and returns the turn: the reply, its tokens and timings, and citations when the
/// chat is grounded in a knowledge base. The chat keeps its model state, so a turn evaluates only what is new.</summary>
[Cmdlet(VerbsLifecycle.Invoke, "CkChat")]
[OutputType(typeof(ChatTurn))]
public sealed class InvokeCkChatCommand : SamplingCommandBase
{
    /// <summary>A chat from New-CkChat/Get-CkChat/Import-CkChat, or its name.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNull]
    public object Chat { get; set; } = null!;

    /// <summary>The message; pipe strings or objects with a Message property to hold a scripted conversation.</summary>
    [Parameter(Mandatory = true, Position = 1, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string Message { get; set; } = "";

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

    protected override void ProcessRecord()
    {
        if (string.IsNullOrWhiteSpace(Message))
        {
            WriteInputError(new ArgumentException("The message is empty."), "EmptyMessage", ErrorCategory.InvalidArgument, Message);
            return;
        }
        ChatConversation? chat = null;
        if (!TryEngine(() => chat = ChatCommandSupport.Resolve(Chat), Chat) || chat is null) return;
        var request = new ChatTurnRequest
        {
            Message = Message,
            Sampling = Sampling(),
            Top = Top,
            Mode = Mode,
            MinScore = MinScore,
            Retriever = chat.KnowledgeBase is { } directory ? new KnowledgeRagRetriever(OpenKnowledgeBase(directory, mustExist: true)) : null,
        };

        ChatTurn? turn = null;
        var streamed = false;
        var answered = TryEngine(() =>
        {
            try
            {
                foreach (var chunk in chat.Stream(request, Cancellation))
                {
                    if (chunk.Turn is not null) { turn = chunk.Turn; break; }
                    if (chunk.Notice is not null) WriteWarning(chunk.Notice);
                    if (Stream && chunk.Text.Length > 0)
                    {
                        WriteStreamedText(chunk.Text);
                        streamed = true;
                    }
                    this.WriteNativeLog();
                }
            }
            finally { this.WriteNativeLog(); }
        }, chat.Name);
        if (!answered || turn is null) return;
        if (streamed) EndStreamedText();
        WriteVerbose($"Turn {turn.Number}: {turn.PromptTokens} prompt tokens ({turn.CachedPromptTokens} from the kept state, {turn.EvaluatedTokens} evaluated), " +
            $"{turn.CompletionTokens} generated ({turn.TokensPerSecond:N1}/s), first token after {turn.TimeToFirstToken.TotalMilliseconds:N0} ms.");
        if (turn.UnknownCitations.Count > 0)
            WriteWarning($"The reply cites [{string.Join("], [", turn.UnknownCitations)}], but the prompt had only {turn.Citations.Count} passage(s).");
        WriteObject(turn);
    }
}
