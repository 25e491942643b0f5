using System.Management.Automation;
using CkLlm.Engine.Inference;
using CkLlm.Engine.Model;

namespace CkLlm.Commands;

/// <summary>Lists the models of the session, local and remote (in load order), optionally filtered by name.</summary>
[Cmdlet(VerbsCommon.Get, "CkModel")]
[OutputType(typeof(LoadedModel), typeof(Engine.Remote.RemoteChatModel), typeof(IChatModel))]
public sealed class GetCkModelCommand : CkCmdlet
{
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string[]? Name { get; set; }

    /// <summary>Only the current model.</summary>
    [Parameter]
    public SwitchParameter Current { get; set; }

    protected override void ProcessRecord()
    {
        var session = SessionHost.Session;
        if (Current)
        {
            var current = session.CurrentModel;
            if (current is not null && (Name is null || Name.Any(n => NameMatches(n, current.Name))))
                WriteObject(ModelOutput.Describe(current));
            return;
        }
        var models = session.Models;
        var selected = Name is null ? models : MatchNames(Name, models, m => m.Name, "ModelNotFound", "No model named '{0}' is loaded.");
        foreach (var model in selected) WriteObject(ModelOutput.Describe(model));
    }
}

/// <summary>Models as the model cmdlets write them: every one with Kind (Local/Remote), Endpoint and RemoteModel, so a
/// mixed list can be filtered and selected alike (a remote model has them as properties; a local one gets them here).</summary>
internal static class ModelOutput
{
    public static PSObject Describe(IChatModel model)
    {
        var output = PSObject.AsPSObject(model);
        if (output.Properties["Kind"] is null)
        {
            output.Properties.Add(new PSNoteProperty("Kind", "Local"));
            output.Properties.Add(new PSNoteProperty("Endpoint", null));
            output.Properties.Add(new PSNoteProperty("RemoteModel", null));
        }
        return output;
    }
}
