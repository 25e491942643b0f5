using System.Management.Automation;
using CkLlm.Engine.Chat;

namespace CkLlm.Commands;

/// <summary>Removes chats from the session and frees their native state (a running reply is stopped first).</summary>
[Cmdlet(VerbsCommon.Remove, "CkChat", SupportsShouldProcess = true, DefaultParameterSetName = NameSet)]
[OutputType(typeof(void))]
public sealed class RemoveCkChatCommand : CkCmdlet
{
    private const string NameSet = "Name";
    private const string ChatSet = "Chat";

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = NameSet, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string[] Name { get; set; } = [];

    [Parameter(Mandatory = true, ParameterSetName = ChatSet, ValueFromPipeline = true)]
    [ValidateNotNull]
    public ChatConversation[] Chat { get; set; } = [];

    protected override void ProcessRecord()
    {
        var session = SessionHost.Session;
        var selected = ParameterSetName == ChatSet
            ? Chat
            : MatchNames(Name, session.Chats, c => c.Name, "ChatNotFound", "No chat named '{0}'.");
        foreach (var chat in selected)
        {
            if (ShouldProcess(chat.Name, "Remove chat and free its model state")) session.RemoveChat(chat);
        }
    }
}
