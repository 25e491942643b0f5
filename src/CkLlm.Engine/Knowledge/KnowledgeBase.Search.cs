using System.Numerics.Tensors;
using CkLlm.Engine.Knowledge.Search;

namespace CkLlm.Engine.Knowledge;

/// <summary>Queries: sources, statistics and search.</summary>
public sealed partial class KnowledgeBase
{
    private readonly DocumentVectors _documentVectors = new();

    public IReadOnlyList<KnowledgeSource> GetSources() => WithCorruptionCheck(_store.GetSources);

    public KnowledgeSource? GetSource(string source) => WithCorruptionCheck(() => _store.FindSource(source));

    public KnowledgeStatistics GetStatistics()
    {
        var idx = new FileInfo(_indexPath);
        return WithCorruptionCheck(() => new KnowledgeStatistics
        {
            Directory = Directory,
            Sources = _store.CountSources(),
            Chunks = _store.CountChunks(),
            Embedder = _embedder.Id,
            Dimensions = _embedder.Dimensions,
            EmbeddingText = EmbeddingTextStyles.ToMeta(_textStyle),
            DatabaseBytes = _store.SizeBytes,
            IndexBytes = idx.Exists ? idx.Length : 0,
            IndexedVectors = _index.Count,
            IndexRebuiltOnOpen = IndexRebuildReason is not null,
        });
    }

    /// <summary>Hybrid (default), vector or keyword search.</summary>
    public IReadOnlyList<KnowledgeHit> Search(string query, SearchOptions? options = null)
    {
        options ??= new SearchOptions();
        // Embed outside the gate: it is the slow part and needs no database.
        var queryVector = options.Mode == SearchMode.Keyword || string.IsNullOrWhiteSpace(query) ? null : EmbedQuery(query);
        return Search(query, queryVector, options);
    }

    /// <summary>The query as the embedder embeds queries (with its query instruction, if it has one), prepared in the
    /// knowledge base's text style like its passages.</summary>
    internal float[] EmbedQuery(string query) => _embedder.EmbedQuery(_textStyle.Apply(query));

    /// <summary>Search with the query vector already computed (benchmarks replay one query under many options).</summary>
    internal IReadOnlyList<KnowledgeHit> Search(string query, float[]? queryVector, SearchOptions options)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Top <= 0) throw new ArgumentOutOfRangeException(nameof(options), options.Top, "Top must be at least 1.");
        if (string.IsNullOrWhiteSpace(query)) return [];
        return WithCorruptionCheck(() => SearchCore(query, options.Mode == SearchMode.Keyword ? null : queryVector, options));
    }

    private IReadOnlyList<KnowledgeHit> SearchCore(string query, float[]? queryVector, SearchOptions options)
    {
        SyncIndex();
        var filterIds = options.Filter is { Count: > 0 } f ? _store.FilterChunkIds(f) : null;
        int candidates = Math.Max(options.Candidates, options.Top * 4);

        List<(long Id, double Score)> keyword = [];
        List<(long Id, double Score)> vector = [];
        List<(long Id, double Score)> vectorOnlyKeywordScores = [];
        if (queryVector is { } qv)
        {
            vector = filterIds is not null ? ExactSearch(qv, filterIds, candidates) : VectorSearch(qv, candidates);
        }
        if (options.Mode != SearchMode.Vector)
        {
            int depth = filterIds is null ? candidates : candidates * 20;
            // Hybrid: the keyword hits and the keyword scores of the vector candidates from one full-text match.
            if (options.Mode == SearchMode.Hybrid)
                (keyword, vectorOnlyKeywordScores) = _store.KeywordSearchAndScores(query, depth, vector.Select(v => v.Id).ToList(), options.KeywordWeights);
            else
                keyword = _store.KeywordSearch(query, depth, options.KeywordWeights);
            if (filterIds is not null)
            {
                var matched = keyword;
                keyword = matched.Where(k => filterIds.Contains(k.Id)).Take(candidates).ToList();
                // Vector candidates among the matches that the cut above left out still need their keyword score.
                var kept = keyword.Select(k => k.Id).ToHashSet();
                var vectorIds = vector.Select(v => v.Id).ToHashSet();
                vectorOnlyKeywordScores.AddRange(matched.Where(k => vectorIds.Contains(k.Id) && !kept.Contains(k.Id)));
            }
        }

        List<(long Id, double Score)> ranked = options.Mode switch
        {
            SearchMode.Keyword => keyword,
            SearchMode.Vector => vector,
            _ => FuseHybrid(queryVector!, keyword, vector, vectorOnlyKeywordScores, options),
        };

        var chunks = _store.GetChunks(ranked.Take(candidates * 2).Select(r => r.Id).ToList());
        var hits = new List<KnowledgeHit>();
        var perSource = new Dictionary<long, int>();
        foreach (var (id, score) in ranked)
        {
            if (score < options.MinScore) break;
            if (!chunks.TryGetValue(id, out var c)) continue; // removed by another process meanwhile
            perSource.TryGetValue(c.SourceId, out var n);
            if (options.MaxPerSource > 0 && n >= options.MaxPerSource) continue;
            perSource[c.SourceId] = n + 1;
            hits.Add(new KnowledgeHit
            {
                Rank = hits.Count + 1, Score = Math.Round(score, 6), Text = c.Text, Source = c.Source, Heading = c.Heading,
                LineStart = c.LineStart, LineEnd = c.LineEnd, Page = c.Page, ChunkId = c.Id, SourceId = c.SourceId, Metadata = c.Metadata,
                Title = c.Title,
            });
            if (hits.Count == options.Top) break;
        }
        return hits;
    }

    /// <summary>Completes the vector side's evidence for keyword-only chunks (their cosine: cheap for a few dozen ids;
    /// the keyword side's for vector-only chunks comes from the same full-text match as the hits), then fuses per document.</summary>
    private List<(long Id, double Score)> FuseHybrid(float[] queryVector, List<(long Id, double Score)> keyword,
        List<(long Id, double Score)> vector, List<(long Id, double Score)> vectorOnlyKeywordScores, SearchOptions options)
    {
        var keywordIds = keyword.Select(k => k.Id).ToHashSet();
        var vectorIds = vector.Select(v => v.Id).ToHashSet();
        var keywordOnly = keywordIds.Where(id => !vectorIds.Contains(id)).ToList();
        var allKeyword = keyword.Concat(vectorOnlyKeywordScores).ToList();
        var allVector = vector.Concat(ExactSearch(queryVector, keywordOnly, keywordOnly.Count)).ToList();
        var sources = _store.SourceIdsOf(keywordIds.Union(vectorIds).ToList());
        List<ChunkScore> Scores(List<(long Id, double Score)> list) =>
            list.Where(x => sources.ContainsKey(x.Id)).Select(x => new ChunkScore(x.Id, sources[x.Id], x.Score)).ToList();
        return DocumentFusion.Fuse(Scores(allKeyword), Scores(allVector), options, documents => DocumentCosines(queryVector, documents));
    }

    /// <summary>The cosine between the query and each document's vector (vectors are normalised: the dot product).</summary>
    private Dictionary<long, double> DocumentCosines(float[] queryVector, IReadOnlyCollection<long> sourceIds) =>
        _documentVectors.Get(sourceIds, _index.Generation, _store.ReadSourceVectors)
            .ToDictionary(p => p.Key, p => (double)TensorPrimitives.Dot(queryVector, p.Value));

    private List<(long Id, double Score)> VectorSearch(float[] query, int count) =>
        _index.Search(query, count).Select(r => (r.Id, (double)r.Similarity)).ToList();

    /// <summary>Exact cosine over a filtered subset (vectors are normalised, so the dot product is the cosine).</summary>
    private List<(long Id, double Score)> ExactSearch(float[] query, IReadOnlyCollection<long> ids, int count)
    {
        var scored = new List<(long, double)>();
        foreach (var (id, v) in _store.ReadVectors(ids))
            scored.Add((id, TensorPrimitives.CosineSimilarity(query, v)));
        return scored.OrderByDescending(s => s.Item2).Take(count).ToList();
    }
}
