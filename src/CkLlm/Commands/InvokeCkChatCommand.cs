using System.Management.Automation;
using CkLlm.Engine.Chat;

namespace CkLlm.Commands;

/// <summary>Sends a message to a chat and returns the turn: the reply, its tokens and timings, and citations when the
/// chat is grounded in a knowledge base. The chat keeps its model state, so a turn evaluates only what is new.</summary>
[Cmdlet(VerbsLifecycle.Invoke, "CkChat")]
[OutputType(typeof(ChatTurn))]
public sealed class InvokeCkChatCommand : ChatCommandBase
{
    /// <summary>A chat from New-CkChat/Get-CkChat/Import-CkChat, or its name.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNull]
    public object Chat { get; set; } = null!;

    /// <summary>The message; pipe strings or objects with a Message property to hold a scripted conversation.</summary>
    [Parameter(Mandatory = true, Position = 1, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string Message { get; set; } = "";

    protected override void ProcessRecord()
    {
        if (string.IsNullOrWhiteSpace(Message))
        {
            WriteInputError(new ArgumentException("The message is empty."), "EmptyMessage", ErrorCategory.InvalidArgument, Message);
            return;
        }
        ChatConversation? chat = null;
        if (!TryEngine(() => chat = ChatCommandSupport.Resolve(Chat), Chat) || chat is null) return;
        var turn = RunTurn(chat, Message, Stream ? WriteStreamedText : null, Cancellation);
        if (turn is not null) WriteObject(turn);
    }
}
