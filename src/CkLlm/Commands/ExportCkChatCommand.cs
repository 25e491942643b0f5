using System.Management.Automation;
using CkLlm.Engine.Chat;

namespace CkLlm.Commands;

/// <summary>Saves a chat (system message, history, turns, settings) as JSON; Import-CkChat continues it.</summary>
[Cmdlet(VerbsData.Export, "CkChat", SupportsShouldProcess = true)]
[OutputType(typeof(FileInfo))]
public sealed class ExportCkChatCommand : CkCmdlet
{
    /// <summary>A chat or its name; pipe chats from Get-CkChat.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true)]
    [ValidateNotNull]
    public object Chat { get; set; } = null!;

    /// <summary>The JSON file to write. With several chats piped in, a folder: each goes to &lt;name&gt;.json there.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>Overwrite an existing file.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Write the file's FileInfo to the pipeline.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        ChatConversation? chat = null;
        if (!TryEngine(() => chat = ChatCommandSupport.Resolve(Chat), Chat) || chat is null) return;
        var path = ResolvePath(Path);
        if (Directory.Exists(path)) path = System.IO.Path.Combine(path, chat.Name + ".json");
        if (File.Exists(path) && !Force)
        {
            WriteInputError(new IOException($"'{path}' exists. Use -Force to overwrite it."), "ChatFileExists", ErrorCategory.ResourceExists, path);
            return;
        }
        if (!ShouldProcess(path, $"Export chat '{chat.Name}'")) return;
        if (TryEngine(() => ChatTranscriptFile.Save(chat.Export(), path), path) && PassThru) WriteObject(new FileInfo(path));
    }
}
