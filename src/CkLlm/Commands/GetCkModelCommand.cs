using System.Management.Automation;
using CkLlm.Engine.Model;

namespace CkLlm.Commands;

/// <summary>Lists the models loaded in the session (in load order), optionally filtered by name.</summary>
[Cmdlet(VerbsCommon.Get, "CkModel")]
[OutputType(typeof(LoadedModel))]
public sealed class GetCkModelCommand : PSCmdlet
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
        var models = session.Models;
        if (Current)
        {
            var current = session.CurrentModel;
            if (current is not null && (Name is null || Name.Any(n => Matches(n, current)))) WriteObject(current);
            return;
        }
        if (Name is null)
        {
            WriteObject(models, enumerateCollection: true);
            return;
        }
        foreach (var name in Name)
        {
            var matched = models.Where(m => Matches(name, m)).ToList();
            if (matched.Count == 0 && !WildcardPattern.ContainsWildcardCharacters(name))
            {
                WriteError(new ErrorRecord(new ItemNotFoundException($"No model named '{name}' is loaded."),
                    "ModelNotFound", ErrorCategory.ObjectNotFound, name));
            }
            WriteObject(matched, enumerateCollection: true);
        }
    }

    private static bool Matches(string pattern, LoadedModel model) =>
        new WildcardPattern(pattern, WildcardOptions.IgnoreCase).IsMatch(model.Name);
}
