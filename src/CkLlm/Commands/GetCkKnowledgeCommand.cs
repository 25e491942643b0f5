using System.Management.Automation;
using CkLlm.Engine.Knowledge;

namespace CkLlm.Commands;

/// <summary>Lists the sources stored in a knowledge base, or its statistics.</summary>
[Cmdlet(VerbsCommon.Get, "CkKnowledge", DefaultParameterSetName = SourcesSet)]
[OutputType(typeof(KnowledgeSource), ParameterSetName = [SourcesSet])]
[OutputType(typeof(KnowledgeStatistics), ParameterSetName = [StatisticsSet])]
public sealed class GetCkKnowledgeCommand : KnowledgeCommandBase
{
    private const string SourcesSet = "Sources";
    private const string StatisticsSet = "Statistics";

    /// <summary>Source names (wildcards) to list; all when omitted.</summary>
    [Parameter(Position = 0, ParameterSetName = SourcesSet, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    public string[]? Source { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = StatisticsSet)]
    public SwitchParameter Statistics { get; set; }

    protected override void ProcessRecord()
    {
        var kb = OpenKnowledgeBase();
        TryEngine(() =>
        {
            if (Statistics)
            {
                WriteObject(kb.GetStatistics());
                return;
            }
            var sources = kb.GetSources();
            WriteObject(Source is null ? sources : MatchNames(Source, sources, s => s.Source, "SourceNotFound", "The knowledge base has no source '{0}'."),
                enumerateCollection: true);
        }, kb.Directory);
    }
}
