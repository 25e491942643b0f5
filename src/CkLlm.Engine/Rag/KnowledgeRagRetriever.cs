using CkLlm.Engine.Knowledge;

namespace CkLlm.Engine.Rag;

/// <summary>Retrieves RAG passages with the same search as Search-CkKnowledge (Top, Mode, Filter, MinScore).</summary>
public sealed class KnowledgeRagRetriever(KnowledgeBase knowledgeBase) : IRagRetriever
{
    public IReadOnlyList<RagPassage> Retrieve(RagRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        cancellationToken.ThrowIfCancellationRequested();
        var hits = knowledgeBase.Search(request.Question, Options(request.Mode, request.Top, request.Filter, request.MinScore));
        return hits.Select(h => new RagPassage
        {
            Source = h.Source, Text = h.Text, Heading = h.Heading, LineStart = h.LineStart, LineEnd = h.LineEnd, Page = h.Page, Score = h.Score,
        }).ToArray();
    }

    /// <summary>Hit sources, best first, for Measure-CkRetrieval.</summary>
    public IReadOnlyList<string> SearchSources(string question, string mode, int top, IReadOnlyDictionary<string, string>? filter = null) =>
        knowledgeBase.Search(question, Options(mode, top, filter, 0)).Select(h => h.Source).ToArray();

    /// <summary>"Hybrid", "Vector" or "Keyword" (any case) as the knowledge base's search mode.</summary>
    public static SearchMode ParseMode(string mode) =>
        Enum.TryParse<SearchMode>(mode, ignoreCase: true, out var parsed) && Enum.IsDefined(parsed)
            ? parsed
            : throw new ArgumentException($"Unknown search mode '{mode}'. Use Hybrid, Vector or Keyword.", nameof(mode));

    private static SearchOptions Options(string mode, int top, IReadOnlyDictionary<string, string>? filter, double minScore) =>
        new() { Top = top, Mode = ParseMode(mode), Filter = filter, MinScore = minScore };
}
