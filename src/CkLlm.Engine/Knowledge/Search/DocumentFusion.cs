namespace CkLlm.Engine.Knowledge.Search;

/// <summary>One chunk found by a retriever: its document and its score (BM25, higher is better, or cosine).</summary>
internal readonly record struct ChunkScore(long ChunkId, long SourceId, double Score);

/// <summary>
/// Fuses keyword and vector evidence per document. Each document's keyword score is its best chunk's BM25 relative to
/// the query's best, its vector score its best chunk's cosine, blended (<see cref="SearchOptions.DocumentWeight"/>)
/// with the cosine of the whole document's vector (<see cref="DocumentVectors"/>); the two are combined (weighted mean, or weighted
/// reciprocal rank of the document rankings). The evidence may come from different chunks of the same document, which
/// chunk-level fusion would never add up. The document's best chunk carries the document's score; its further chunks
/// carry their own (lower) chunk-level score, so a per-source cap of 1 gives a document ranking.
/// </summary>
internal static class DocumentFusion
{
    /// <param name="documentCosines">The cosine between the query and each given document's vector (null: best chunks only).</param>
    public static List<(long ChunkId, double Score)> Fuse(IReadOnlyList<ChunkScore> keyword, IReadOnlyList<ChunkScore> vector, SearchOptions options,
        Func<IReadOnlyCollection<long>, IReadOnlyDictionary<long, double>>? documentCosines = null)
    {
        var maxKeyword = keyword.Count == 0 ? 0 : keyword.Max(k => k.Score);
        double cutoff = options.KeywordCutoff * maxKeyword;
        var kw = new Dictionary<long, double>();
        var vec = new Dictionary<long, double>();
        var sourceOf = new Dictionary<long, long>();
        foreach (var k in keyword)
        {
            if (k.Score < cutoff || maxKeyword <= 0) continue;
            kw[k.ChunkId] = k.Score / maxKeyword;
            sourceOf[k.ChunkId] = k.SourceId;
        }
        foreach (var v in vector)
        {
            vec[v.ChunkId] = Math.Max(0, v.Score);
            sourceOf[v.ChunkId] = v.SourceId;
        }

        // Per document: best relative keyword score and best cosine, each from whichever chunk has it.
        var docKeyword = new Dictionary<long, double>();
        var docVector = new Dictionary<long, double>();
        foreach (var (id, s) in kw) docKeyword[sourceOf[id]] = Math.Max(docKeyword.GetValueOrDefault(sourceOf[id]), s);
        foreach (var (id, s) in vec) docVector[sourceOf[id]] = Math.Max(docVector.GetValueOrDefault(sourceOf[id]), s);
        var documents = docKeyword.Keys.Union(docVector.Keys).ToList();
        double wd = Math.Clamp(options.DocumentWeight, 0, 1);
        if (wd > 0 && documentCosines is not null && documents.Count > 0)
        {
            var whole = documentCosines(documents);
            foreach (var d in documents)
                docVector[d] = (1 - wd) * docVector.GetValueOrDefault(d) + wd * Math.Max(0, whole.GetValueOrDefault(d));
        }

        double wv = Math.Clamp(options.VectorWeight, 0, 1), wk = 1 - wv;
        Dictionary<long, double> docScore;
        if (options.Fusion == FusionMethod.Rrf)
        {
            var keywordRank = RankOf(docKeyword);
            var vectorRank = RankOf(docVector);
            int k = Math.Max(1, options.RrfK);
            // Normalised so a document first in both rankings scores 1 (MinScore stays on a 0..1 scale).
            double best = (wk + wv) / (k + 1);
            docScore = documents.ToDictionary(d => d, d =>
                ((keywordRank.TryGetValue(d, out var rk) ? wk / (k + rk) : 0) + (vectorRank.TryGetValue(d, out var rv) ? wv / (k + rv) : 0)) / best);
        }
        else
        {
            docScore = documents.ToDictionary(d => d, d => wk * docKeyword.GetValueOrDefault(d) + wv * docVector.GetValueOrDefault(d));
        }

        // Chunks: each scored by its own evidence; the best chunk of each document is raised to the document's score.
        var chunkScores = sourceOf.Keys.Select(id => (Id: id, Score: wk * kw.GetValueOrDefault(id) + wv * vec.GetValueOrDefault(id), Source: sourceOf[id]))
            .OrderByDescending(c => c.Score).ThenBy(c => c.Id).ToList();
        var seen = new HashSet<long>();
        var result = new List<(long, double)>(chunkScores.Count);
        foreach (var c in chunkScores)
            result.Add((c.Id, seen.Add(c.Source) ? docScore[c.Source] : Math.Min(c.Score, docScore[c.Source])));
        return result.OrderByDescending(r => r.Item2).ThenBy(r => r.Item1).ToList();
    }

    private static Dictionary<long, int> RankOf(Dictionary<long, double> scores)
    {
        var rank = new Dictionary<long, int>();
        foreach (var (doc, _) in scores.OrderByDescending(p => p.Value).ThenBy(p => p.Key)) rank[doc] = rank.Count + 1;
        return rank;
    }
}
