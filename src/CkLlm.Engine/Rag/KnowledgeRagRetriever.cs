using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Knowledge.Search;

namespace CkLlm.Engine.Rag;

/// <summary>Retrieves RAG passages with the same search as Search-CkKnowledge (Top, Mode, Filter, MinScore), optionally
/// reordered by a reranker.</summary>
public sealed class KnowledgeRagRetriever(KnowledgeBase knowledgeBase, IReranker? reranker = null) : IRagRetriever
{
    public KnowledgeBase KnowledgeBase => knowledgeBase;

    public IReadOnlyList<RagPassage> Retrieve(RagRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        cancellationToken.ThrowIfCancellationRequested();
        var hits = Search(request.Question, Options(request.Mode, request.Top, request.Filter, request.MinScore), cancellationToken);
        return hits.Select(ToPassage).ToArray();
    }

    /// <summary>A knowledge-base hit as a RAG passage.</summary>
    public static RagPassage ToPassage(KnowledgeHit hit)
    {
        ArgumentNullException.ThrowIfNull(hit);
        return new RagPassage
        {
            Source = hit.Source, Text = hit.Text, Heading = hit.Heading, LineStart = hit.LineStart, LineEnd = hit.LineEnd, Page = hit.Page, Score = hit.Score,
        };
    }

    /// <summary>Hit sources, best first, for Measure-CkRetrieval.</summary>
    public IReadOnlyList<string> SearchSources(string question, string mode, int top, IReadOnlyDictionary<string, string>? filter = null) =>
        Search(question, Options(mode, top, filter, 0), CancellationToken.None).Select(h => h.Source).ToArray();

    /// <summary>The knowledge base's search; with a reranker, deeper, then reordered and cut to Top. MinScore applies
    /// to the first stage (the reranker's scores are on another scale).</summary>
    public IReadOnlyList<KnowledgeHit> Search(string query, SearchOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (reranker is null) return knowledgeBase.Search(query, options);
        int top = options.Top;
        options.Top = Reranking.Depth(top);
        var candidates = knowledgeBase.Search(query, options);
        options.Top = top;
        return Reranking.Rerank(reranker, query, candidates, top, cancellationToken);
    }

    /// <summary>"Hybrid", "Vector" or "Keyword" (any case) as the knowledge base's search mode.</summary>
    public static SearchMode ParseMode(string mode) =>
        Enum.TryParse<SearchMode>(mode, ignoreCase: true, out var parsed) && Enum.IsDefined(parsed)
            ? parsed
            : throw new ArgumentException($"Unknown search mode '{mode}'. Use Hybrid, Vector or Keyword.", nameof(mode));

    private static SearchOptions Options(string mode, int top, IReadOnlyDictionary<string, string>? filter, double minScore) =>
        new() { Top = top, Mode = ParseMode(mode), Filter = filter, MinScore = minScore };
}
