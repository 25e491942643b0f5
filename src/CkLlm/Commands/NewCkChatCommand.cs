using System.Management.Automation;
using CkLlm.Engine.Chat;

namespace CkLlm.Commands;

/// <summary>Starts a conversation with a loaded model that keeps its state between turns (see Invoke-CkChat).</summary>
[Cmdlet(VerbsCommon.New, "CkChat")]
[OutputType(typeof(ChatConversation))]
public sealed class NewCkChatCommand : KnowledgeCommandBase
{
    /// <summary>A model name or object; default: the current model.</summary>
    [Parameter(Position = 0)]
    [ValidateNotNull]
    public object? Model { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? System { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Name { get; set; }

    /// <summary>Summarise turns dropped from a history that outgrew the context, instead of only dropping them.</summary>
    [Parameter]
    public SwitchParameter Summarize { get; set; }

    /// <summary>Re-evaluate the whole history every turn in a fresh context (no state kept; for comparison).</summary>
    [Parameter]
    public SwitchParameter NoCache { get; set; }

    /// <summary>Replace a chat of the same name.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void EndProcessing()
    {
        var model = ResolveModel(Model);
        if (model is null) return;
        var knowledgeBase = GroundingKnowledgeBase();
        TryEngine(() => WriteObject(SessionHost.Session.NewChat(model, new ChatOptions
        {
            Name = Name,
            System = System,
            KnowledgeBase = knowledgeBase,
            Summarize = Summarize,
            ReuseState = !NoCache,
        }, replace: Force)), Name);
    }
}
