using System.Management.Automation;
using CkLlm.Engine.Chat;

namespace CkLlm.Commands;

/// <summary>Lists the chats of the session (in creation order), optionally filtered by name.</summary>
[Cmdlet(VerbsCommon.Get, "CkChat")]
[OutputType(typeof(ChatConversation))]
public sealed class GetCkChatCommand : CkCmdlet
{
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string[]? Name { get; set; }

    protected override void ProcessRecord()
    {
        var chats = SessionHost.Session.Chats;
        WriteObject(Name is null ? chats : MatchNames(Name, chats, c => c.Name, "ChatNotFound", "No chat named '{0}'."), enumerateCollection: true);
    }
}
