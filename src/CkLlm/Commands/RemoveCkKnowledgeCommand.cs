using System.Management.Automation;
using CkLlm.Engine.Knowledge;

namespace CkLlm.Commands;

/// <summary>Removes sources (and all their chunks and vectors) from a knowledge base.</summary>
[Cmdlet(VerbsCommon.Remove, "CkKnowledge", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = SourceSet)]
[OutputType(typeof(IngestResult))]
public sealed class RemoveCkKnowledgeCommand : KnowledgeCommandBase
{
    private const string SourceSet = "Source";
    private const string IdSet = "Id";

    /// <summary>Source names (wildcards), e.g. a file path as Get-CkKnowledge shows it.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = SourceSet, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    public string[] Source { get; set; } = [];

    [Parameter(Mandatory = true, ParameterSetName = IdSet, ValueFromPipelineByPropertyName = true)]
    public long[] Id { get; set; } = [];

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        var kb = OpenKnowledgeBase();
        try
        {
            var sources = kb.GetSources();
            var selected = new List<KnowledgeSource>();
            if (ParameterSetName == IdSet)
            {
                foreach (var id in Id)
                {
                    var match = sources.FirstOrDefault(s => s.Id == id);
                    if (match is null) WriteError(NotFound($"The knowledge base has no source with id {id}.", id));
                    else selected.Add(match);
                }
            }
            else
            {
                foreach (var name in Source)
                {
                    var pattern = new WildcardPattern(name, WildcardOptions.IgnoreCase);
                    var matches = sources.Where(s => pattern.IsMatch(s.Source) || string.Equals(s.Source, name, StringComparison.Ordinal)).ToList();
                    if (matches.Count == 0 && !WildcardPattern.ContainsWildcardCharacters(name))
                        WriteError(NotFound($"The knowledge base has no source '{name}'.", name));
                    selected.AddRange(matches);
                }
            }
            var confirmed = selected.DistinctBy(s => s.Id)
                .Where(s => ShouldProcess($"{s.Source} ({s.Chunks} chunks) in {kb.Directory}", "Remove knowledge source")).ToList();
            if (confirmed.Count == 0) return;
            var removed = kb.Remove(confirmed, Cancellation);
            kb.Flush();
            if (PassThru) WriteObject(removed, enumerateCollection: true);
        }
        catch (KnowledgeBaseException ex)
        {
            ThrowTerminatingError(ToErrorRecord(ex, kb.Directory));
        }
    }

    private static ErrorRecord NotFound(string message, object target) =>
        new(new ItemNotFoundException(message), "SourceNotFound", ErrorCategory.ObjectNotFound, target);
}
