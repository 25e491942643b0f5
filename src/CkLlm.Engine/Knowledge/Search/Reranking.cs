namespace CkLlm.Engine.Knowledge.Search;

/// <summary>Scores how well each passage answers a query (higher is better). Implementations are thread-safe.</summary>
public interface IReranker
{
    /// <summary>What ranked the hits (a model file name, or "judge:" + a chat model's name).</summary>
    string Name { get; }

    IReadOnlyList<double> Score(string query, IReadOnlyList<string> passages, CancellationToken cancellationToken = default);
}

/// <summary>The optional second stage: search deeper, let a reranker order the candidates, keep the best.</summary>
public static class Reranking
{
    /// <summary>Candidates searched per requested hit when reranking (at least <see cref="MinimumDepth"/>).</summary>
    public const int DepthPerHit = 4;
    public const int MinimumDepth = 20;

    /// <summary>How many hits to search for so the reranker has candidates to choose from.</summary>
    public static int Depth(int top) => Math.Max(MinimumDepth, top * DepthPerHit);

    /// <summary>Orders <paramref name="hits"/> by the reranker's score of "title, heading path, text" and keeps
    /// <paramref name="top"/>; each hit's Score becomes the reranker's score, its Rank the new position.</summary>
    public static IReadOnlyList<KnowledgeHit> Rerank(IReranker reranker, string query, IReadOnlyList<KnowledgeHit> hits, int top,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reranker);
        ArgumentNullException.ThrowIfNull(hits);
        if (hits.Count == 0) return hits;
        var passages = hits.Select(PassageText).ToList();
        var scores = reranker.Score(query, passages, cancellationToken);
        if (scores.Count != hits.Count)
            throw new InvalidOperationException($"The reranker {reranker.Name} returned {scores.Count} scores for {hits.Count} passages.");
        return hits.Select((h, i) => (Hit: h, Score: scores[i], Index: i))
            .OrderByDescending(x => x.Score).ThenBy(x => x.Index)
            .Take(top)
            .Select((x, i) => x.Hit with { Rank = i + 1, Score = Math.Round(x.Score, 6) })
            .ToList();
    }

    private static string PassageText(KnowledgeHit hit)
    {
        var head = string.Join("\n", new[] { hit.Title, hit.Heading }.Where(s => !string.IsNullOrWhiteSpace(s)));
        return head.Length == 0 ? hit.Text : head + "\n" + hit.Text;
    }
}

/// <summary>A file given as a reranker that is not one (no rank pooling or no classification head).</summary>
public sealed class NotARerankerException(string path, string reason)
    : KnowledgeBaseException($"'{path}' is not a reranker model: {reason}. Use a GGUF cross-encoder reranker (for example a bge-reranker GGUF).")
{
    public string Path { get; } = path;
}

/// <summary>Rerankers by what the user named: a loaded chat model's name (pointwise judge) or a GGUF reranker file
/// (loaded once per process, like embedders).</summary>
public static class RerankerRegistry
{
    private static readonly object Gate = new();
    private static readonly Dictionary<string, GgufReranker> Loaded = new(StringComparer.Ordinal);

    /// <param name="nameOrPath">A loaded model's name, or the path of a GGUF reranker.</param>
    /// <param name="findModel">Looks a loaded chat model up by name (null when there is none of that name).</param>
    /// <param name="resolvedPath">The path as the caller resolves it (PowerShell's current location); default: the full path.</param>
    public static IReranker Resolve(string nameOrPath, Func<string, Inference.IChatModel?> findModel, string? resolvedPath = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(nameOrPath);
        ArgumentNullException.ThrowIfNull(findModel);
        switch (findModel(nameOrPath))
        {
            case Model.LoadedModel local: return new ChatModelJudge(local);
            case { } other: throw new ArgumentException($"The model '{other.Name}' cannot judge relevance: the judge reads next-token logits, which only a local llama.cpp model gives.");
        }
        var path = Path.GetFullPath(resolvedPath ?? nameOrPath);
        lock (Gate)
        {
            if (Loaded.TryGetValue(path, out var reranker)) return reranker;
            reranker = new GgufReranker(path);
            Loaded[path] = reranker;
            return reranker;
        }
    }

    /// <summary>Frees every loaded reranker (session reset).</summary>
    public static void Clear()
    {
        lock (Gate)
        {
            foreach (var r in Loaded.Values) r.Dispose();
            Loaded.Clear();
        }
    }
}
