using System.Management.Automation;
using CkLlm.Engine.Model;

namespace CkLlm.Commands;

/// <summary>Unloads models from the session and frees their native memory.</summary>
[Cmdlet(VerbsCommon.Remove, "CkModel", SupportsShouldProcess = true, DefaultParameterSetName = NameSet)]
[OutputType(typeof(void))]
public sealed class RemoveCkModelCommand : PSCmdlet
{
    private const string NameSet = "Name";
    private const string ModelSet = "Model";

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = NameSet, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string[] Name { get; set; } = [];

    [Parameter(Mandatory = true, ParameterSetName = ModelSet, ValueFromPipeline = true)]
    [ValidateNotNull]
    public LoadedModel[] Model { get; set; } = [];

    protected override void ProcessRecord()
    {
        var session = SessionHost.Session;
        if (ParameterSetName == ModelSet)
        {
            foreach (var model in Model)
            {
                if (ShouldProcess(model.Name, "Unload model and free its memory")) session.RemoveModel(model);
            }
            return;
        }
        foreach (var name in Name)
        {
            var pattern = new WildcardPattern(name, WildcardOptions.IgnoreCase);
            var matched = session.Models.Where(m => pattern.IsMatch(m.Name)).ToList();
            if (matched.Count == 0 && !WildcardPattern.ContainsWildcardCharacters(name))
            {
                WriteError(new ErrorRecord(new ItemNotFoundException($"No model named '{name}' is loaded."),
                    "ModelNotFound", ErrorCategory.ObjectNotFound, name));
            }
            foreach (var model in matched)
            {
                if (ShouldProcess(model.Name, "Unload model and free its memory")) session.RemoveModel(model);
            }
        }
    }
}
