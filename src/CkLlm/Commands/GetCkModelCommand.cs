using System.Management.Automation;
using CkLlm.Engine.Inference;
using CkLlm.Engine.Model;

namespace CkLlm.Commands;

/// <summary>Lists the models loaded in the session (in load order), optionally filtered by name.</summary>
[Cmdlet(VerbsCommon.Get, "CkModel")]
[OutputType(typeof(LoadedModel), typeof(IChatModel))]
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
                WriteObject(current);
            return;
        }
        var models = session.Models;
        WriteObject(Name is null ? models : MatchNames(Name, models, m => m.Name, "ModelNotFound", "No model named '{0}' is loaded."), enumerateCollection: true);
    }
}
