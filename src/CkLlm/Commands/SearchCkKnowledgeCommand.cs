using System.Collections;
using System.Management.Automation;
using CkLlm.Engine.Knowledge;

namespace CkLlm.Commands;

/// <summary>Searches the knowledge base: hybrid (BM25 and vectors fused per document), vector or keyword; optionally reranked.</summary>
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

    /// <summary>A GGUF reranker file, or the name of a loaded chat model to judge relevance: searches deeper, reorders, keeps -Top.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Rerank { get; set; }

    protected override void ProcessRecord()
    {
        var kb = OpenKnowledgeBase();
        var retriever = new Engine.Rag.KnowledgeRagRetriever(kb, ResolveReranker(Rerank));
        IReadOnlyList<KnowledgeHit> hits = [];
        var searched = TryEngine(() => hits = retriever.Search(Query, new SearchOptions
        {
            Top = Top, Mode = Enum.Parse<SearchMode>(Mode, ignoreCase: true), Filter = ToDictionary(Filter), MinScore = MinScore, MaxPerSource = MaxPerSource,
        }, Cancellation), Query);
        if (!searched) return;
        foreach (var hit in hits)
        {
            var obj = PSObject.AsPSObject(hit);
            obj.TypeNames.Insert(0, HitTypeName);
            WriteObject(obj);
        }
    }
}
