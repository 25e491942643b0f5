using System.Collections;
using System.Management.Automation;
using CkLlm.Engine.Knowledge;

namespace CkLlm.Commands;

/// <summary>Searches the knowledge base: hybrid (BM25 + HNSW fused by reciprocal rank), vector or keyword.</summary>
[Cmdlet(VerbsCommon.Search, "CkKnowledge")]
[OutputType(typeof(KnowledgeHit))]
public sealed class SearchCkKnowledgeCommand : KnowledgeCommandBase
{
    public const string HitTypeName = "CkKnowledgeHit";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string Query { get; set; } = "";

    [Parameter]
    [ValidateRange(RetrievalParameters.MinTop, RetrievalParameters.MaxTop)]
    public int Top { get; set; } = RetrievalParameters.DefaultTop;

    [Parameter]
    [ValidateSet(typeof(SearchModeValues), IgnoreCase = true)]
    public string Mode { get; set; } = RetrievalParameters.DefaultMode;

    [Parameter]
    public Hashtable? Filter { get; set; }

    [Parameter]
    [ValidateMinScore]
    public double MinScore { get; set; }

    [Parameter]
    [ValidateRange(0, 1000)]
    public int MaxPerSource { get; set; } = 2;

    protected override void ProcessRecord()
    {
        var kb = OpenKnowledgeBase();
        IReadOnlyList<KnowledgeHit> hits = [];
        var searched = TryEngine(() => hits = kb.Search(Query, new SearchOptions
        {
            Top = Top, Mode = Enum.Parse<SearchMode>(Mode, ignoreCase: true), Filter = ToDictionary(Filter), MinScore = MinScore, MaxPerSource = MaxPerSource,
        }), Query);
        if (!searched) return;
        foreach (var hit in hits)
        {
            var obj = PSObject.AsPSObject(hit);
            obj.TypeNames.Insert(0, HitTypeName);
            WriteObject(obj);
        }
    }
}
