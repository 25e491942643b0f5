using System.Management.Automation;
using CkLlm.Engine.Chat;

namespace CkLlm.Commands;

/// <summary>Restores a chat saved by Export-CkChat; it continues where it stopped (its first turn evaluates the history once).</summary>
[Cmdlet(VerbsData.Import, "CkChat")]
[OutputType(typeof(ChatConversation))]
public sealed class ImportCkChatCommand : CkCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName", "PSPath")]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>The model to continue on; default: the loaded model of the name the chat was saved with.</summary>
    [Parameter]
    [ValidateNotNull]
    public object? Model { get; set; }

    /// <summary>A name for the restored chat; default: the saved name.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Name { get; set; }

    /// <summary>Replace a chat of the same name.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessRecord()
    {
        var path = ResolvePath(Path);
        ChatTranscript? transcript = null;
        if (!TryEngine(() => transcript = ChatTranscriptFile.Load(path), path) || transcript is null) return;
        var model = ResolveModel(Model ?? transcript.Model);
        if (model is null) return;
        TryEngine(() =>
        {
            var chat = ChatConversation.Import(transcript, model, Name);
            SessionHost.Session.AddChat(chat, replace: Force);
            WriteObject(chat);
        }, path);
    }
}
