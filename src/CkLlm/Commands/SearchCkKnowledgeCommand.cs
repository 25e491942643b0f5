using System.Collections;
using System.Management.Automation;
using CkLlm.Engine.Knowledge;

namespace CkLlm.Commands;

/// <summary>Searches the knowledge base: hybrid (BM25 + HNSW fused by reciprocal rank), vector or keyword.</summary>
[Cmdlet(VerbsCommon.Search, "CkKnowledge")]
[OutputType(typeof(KnowledgeHit))]
public sealed class SearchCkKnowledgeCommand : RerankingCommandBase
{
    public const string HitTypeName = "CkKnowledgeHit";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string Query { get; set; } = "";

    [Parameter]
    [ValidateRange(1, 1000)]
    public int Top { get; set; } = 5;

    // A string, not the engine's SearchMode enum: a value-type field of an engine type would make PowerShell's type
    // scan at Import-Module load the engine before the module's AssemblyLoadContext resolver exists.
    [Parameter]
    [ValidateSet("Hybrid", "Vector", "Keyword", IgnoreCase = true)]
    public string Mode { get; set; } = "Hybrid";

    [Parameter]
    public Hashtable? Filter { get; set; }

    [Parameter]
    public double MinScore { get; set; }

    [Parameter]
    [ValidateRange(0, 1000)]
    public int MaxPerSource { get; set; } = 2;

    protected override void ProcessRecord()
    {
        var kb = OpenKnowledgeBase();
        IReadOnlyList<KnowledgeHit> hits;
        try
        {
            hits = new Engine.Rag.KnowledgeRagRetriever(kb, ResolveReranker()).Search(Query, new SearchOptions
            {
                Top = Top, Mode = Enum.Parse<SearchMode>(Mode, ignoreCase: true), Filter = ToDictionary(Filter), MinScore = MinScore, MaxPerSource = MaxPerSource,
            }, Cancellation);
        }
        catch (Exception ex) when (ex is KnowledgeBaseException or ArgumentException or IOException)
        {
            WriteError(ToErrorRecord(ex, Query));
            return;
        }
        foreach (var hit in hits)
        {
            var obj = PSObject.AsPSObject(hit);
            obj.TypeNames.Insert(0, HitTypeName);
            WriteObject(obj);
        }
    }
}
