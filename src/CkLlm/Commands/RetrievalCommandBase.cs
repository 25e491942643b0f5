using System.Collections;
using System.Management.Automation;
using CkLlm.Engine.Rag;

namespace CkLlm.Commands;

/// <summary>
/// The cmdlets that search a knowledge base (Search-CkKnowledge, Invoke-CkRag, Measure-CkRetrieval, the chat cmdlets): -Top, -Filter and
/// -Rerank declared once, on top of -KnowledgeBase (which must exist). Invoke-CkRag takes its generation parameters
/// through <see cref="GenerationParameters"/>, so this base can be its one base class.
/// </summary>
public abstract class RetrievalCommandBase : KnowledgeCommandBase
{
    /// <summary>Hits (passages, or K for Measure-CkRetrieval) per query.</summary>
    [Parameter]
    [ValidateRange(RetrievalParameters.MinTop, RetrievalParameters.MaxTop)]
    public int Top { get; set; } = RetrievalParameters.DefaultTop;

    [Parameter]
    public Hashtable? Filter { get; set; }

    /// <summary>A GGUF reranker file, or the name of a loaded chat model to judge relevance: searches deeper, reorders, keeps -Top.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Rerank { get; set; }

    /// <summary>The search over -KnowledgeBase (or <paramref name="defaultKnowledgeBase"/> when it is not given) with the
    /// -Rerank stage; the knowledge base is held open until the command ends.</summary>
    protected KnowledgeRagRetriever OpenRetriever(string? defaultKnowledgeBase = null) =>
        new(OpenKnowledgeBase(defaultKnowledgeBase: defaultKnowledgeBase), ResolveReranker(Rerank));
}

/// <summary>Retrieval for one query in one mode (Search-CkKnowledge, Invoke-CkRag, Invoke-CkChat, Enter-CkChat): adds -Mode and -MinScore.</summary>
public abstract class QueryRetrievalCommandBase : RetrievalCommandBase
{
    [Parameter]
    [ValidateSet(typeof(SearchModeValues), IgnoreCase = true)]
    public string Mode { get; set; } = RetrievalParameters.DefaultMode;

    [Parameter]
    [ValidateMinScore]
    public double MinScore { get; set; }
}
