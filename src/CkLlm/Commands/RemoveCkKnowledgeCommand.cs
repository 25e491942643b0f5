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
        TryEngine(() =>
        {
            var sources = kb.GetSources();
            var selected = new List<KnowledgeSource>();
            if (ParameterSetName == IdSet)
            {
                foreach (var id in Id)
                {
                    var match = sources.FirstOrDefault(s => s.Id == id);
                    if (match is null)
                        WriteInputError(new ItemNotFoundException($"The knowledge base has no source with id {id}."), "SourceNotFound", ErrorCategory.ObjectNotFound, id);
                    else selected.Add(match);
                }
            }
            else
            {
                selected.AddRange(MatchNames(Source, sources, s => s.Source, "SourceNotFound", "The knowledge base has no source '{0}'."));
            }
            var confirmed = selected.DistinctBy(s => s.Id)
                .Where(s => ShouldProcess($"{s.Source} ({s.Chunks} chunks) in {kb.Directory}", "Remove knowledge source")).ToList();
            if (confirmed.Count == 0) return;
            var removed = kb.Remove(confirmed, Cancellation);
            kb.Flush();
            if (PassThru) WriteObject(removed, enumerateCollection: true);
        }, kb.Directory);
    }
}
