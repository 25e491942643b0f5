using System.Management.Automation;
using CkLlm.Engine.Inference;

namespace CkLlm.Commands;

/// <summary>Unloads models from the session and frees their native memory.</summary>
[Cmdlet(VerbsCommon.Remove, "CkModel", SupportsShouldProcess = true, DefaultParameterSetName = NameSet)]
[OutputType(typeof(void))]
public sealed class RemoveCkModelCommand : CkCmdlet
{
    private const string NameSet = "Name";
    private const string ModelSet = "Model";

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = NameSet, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string[] Name { get; set; } = [];

    [Parameter(Mandatory = true, ParameterSetName = ModelSet, ValueFromPipeline = true)]
    [ValidateNotNull]
    public IChatModel[] Model { get; set; } = [];

    protected override void ProcessRecord()
    {
        var session = SessionHost.Session;
        var selected = ParameterSetName == ModelSet
            ? Model
            : MatchNames(Name, session.Models, m => m.Name, "ModelNotFound", "No model named '{0}' is loaded.");
        foreach (var model in selected)
        {
            if (ShouldProcess(model.Name, "Unload model and free its memory")) session.RemoveModel(model);
        }
    }
}
