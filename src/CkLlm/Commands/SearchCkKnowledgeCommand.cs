using System.Management.Automation;
using CkLlm.Engine.Knowledge;

namespace CkLlm.Commands;

/// <summary>Searches the knowledge base: hybrid (BM25 and vectors fused per document), vector or keyword; optionally reranked.</summary>
[Cmdlet(VerbsCommon.Search, "CkKnowledge")]
[OutputType(typeof(KnowledgeHit))]
public sealed class SearchCkKnowledgeCommand : QueryRetrievalCommandBase
{
    public const string HitTypeName = "CkKnowledgeHit";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string Query { get; set; } = "";

    [Parameter]
    [ValidateRange(0, 1000)]
    public int MaxPerSource { get; set; } = 2;

    protected override void ProcessRecord()
    {
        var retriever = OpenRetriever();
        IReadOnlyList<KnowledgeHit> hits = [];
        var searched = TryEngine(() => hits = retriever.Search(Query, new SearchOptions
        {
            Top = Top,
            Mode = Engine.Rag.KnowledgeRagRetriever.ParseMode(Mode),
            Filter = ToDictionary(Filter),
            MinScore = MinScore,
            MaxPerSource = MaxPerSource,
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
