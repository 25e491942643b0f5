using Npgsql;
using NpgsqlTypes;

namespace CkLlm.Engine.Knowledge.Storage.Postgres;

/// <summary>
/// Keyword search in the server, scored with the same BM25 as FTS5's bm25() (k1 = 1.2, b = 0.75, idf floored at 1e-6,
/// column weights multiplying term frequencies). Each chunk has a weighted tsvector (title A, headings B, body C, GIN
/// indexed for SQL users) and, derived from it when the chunk is written, one posting per lexeme in
/// <c>ckllm_postings</c> (its frequency under each weight and the chunk's length): scoring reads only the query terms'
/// postings, an index-only scan, instead of decoding the tsvector of every matching chunk (which made a search on
/// 11,500 chunks 25x slower than FTS5). Text is indexed with punctuation turned into spaces
/// (<see cref="PostgresSchema.SearchableText"/>), so '/etc/fstab' or 'systemd.automount' give the words FTS5's unicode61
/// gives; stemming is PostgreSQL's English Snowball against FTS5's porter, so scores are close, not identical.
/// A search returns its hits' rows in the same round trip (see <see cref="HeldRow"/>): the hybrid search that follows
/// asks for their vectors, sources and texts, and gets them without going back to the server.
/// </summary>
internal sealed partial class PostgresKnowledgeStore
{
    /// <summary>The query's lexemes (as the documents' text was indexed), their postings in the chunks <c>{0}</c>
    /// selects, their document frequencies over the whole knowledge base, and the BM25 sum per chunk. Every part reads
    /// the postings' primary key (lexeme first), so the cost follows the query terms' postings, not the chunks' size.
    /// Constants are float8: a bare 0.75 is numeric in PostgreSQL, and numeric arithmetic doubled the query's time.</summary>
    private const string Bm25Template = $$"""
        WITH q AS MATERIALIZED (
            SELECT DISTINCT lexeme FROM unnest($2::text[]) AS t(term)
            CROSS JOIN LATERAL unnest(tsvector_to_array(to_tsvector('{{PostgresSchema.TextSearchConfig}}', t.term))) AS lexeme),
        stats AS (SELECT greatest(chunk_count, 1)::float8 AS n, greatest(token_total, 1)::float8 / greatest(chunk_count, 1) AS avgdl
                  FROM ckllm_knowledge_bases WHERE id = $1),
        df AS MATERIALIZED (
            SELECT d.lexeme, greatest(ln((s.n - d.hits + 0.5::float8) / (d.hits + 0.5::float8)), 1e-6::float8) AS idf
            FROM (SELECT p.lexeme, count(*) AS hits FROM ckllm_postings p WHERE p.kb_id = $1 AND p.lexeme IN (SELECT lexeme FROM q) GROUP BY p.lexeme) d
            CROSS JOIN stats s),
        tf AS (SELECT p.lexeme, p.chunk_id, p.title_tf * $3::float8 + p.heading_tf * $4::float8 + p.body_tf * $5::float8 AS f, p.chunk_length
               FROM ckllm_postings p WHERE p.kb_id = $1 AND p.lexeme IN (SELECT lexeme FROM q) AND {0}),
        scored AS (
            SELECT tf.chunk_id AS id, sum(df.idf * (tf.f * 2.2::float8) / (tf.f + 1.2::float8 * (0.25::float8 + 0.75::float8 * tf.chunk_length / s.avgdl))) AS score
            FROM tf JOIN df USING (lexeme) CROSS JOIN stats s
            GROUP BY tf.chunk_id)
        """;

    /// <summary>The best <c>$6</c> chunks with any query term, with their rows.</summary>
    private static readonly string SearchSql = string.Format(System.Globalization.CultureInfo.InvariantCulture, Bm25Template, "true") + $"""
        , best AS (SELECT id, score FROM scored ORDER BY score DESC, id LIMIT $6)
        SELECT best.score, {RowColumns}
        FROM best JOIN ckllm_chunks c ON c.id = best.id JOIN ckllm_sources s ON s.id = c.source_id
        ORDER BY best.score DESC, best.id
        """;

    /// <summary>The scores of the chunks <c>$6</c>.</summary>
    private static readonly string ScoresSql = string.Format(System.Globalization.CultureInfo.InvariantCulture, Bm25Template, "p.chunk_id = ANY($6)") +
        " SELECT id, score FROM scored";

    public List<(long Id, double Score)> KeywordSearch(string query, int limit, KeywordWeights weights)
    {
        var terms = KeywordQuery.Terms(query);
        var results = new List<(long, double)>();
        if (terms.Count == 0) return results;
        using var cmd = Command(SearchSql, _kb, terms.ToArray(), weights.Title, weights.Headings, weights.Body, limit);
        using var r = cmd.ExecuteReader();
        foreach (var (row, score) in ReadRows(r, firstColumn: 1, r => r.GetDouble(0)))
            results.Add((row.Chunk.Id, score));
        return results;
    }

    public (List<(long Id, double Score)> Top, List<(long Id, double Score)> Others) KeywordSearchAndScores(string query, int limit,
        IReadOnlyCollection<long> alsoScore, KeywordWeights weights)
    {
        var top = KeywordSearch(query, limit, weights);
        var topIds = top.Select(t => t.Id).ToHashSet();
        return (top, KeywordScores(query, alsoScore.Where(id => !topIds.Contains(id)).ToList(), weights));
    }

    /// <summary>In the same round trip: the scores of <paramref name="ids"/>, and the rows of those not already held
    /// (the hybrid search asks for the vector candidates' sources and texts next).</summary>
    private List<(long Id, double Score)> KeywordScores(string query, IReadOnlyCollection<long> ids, KeywordWeights weights)
    {
        var terms = KeywordQuery.Terms(query);
        var results = new List<(long, double)>();
        if (ids.Count == 0) return results;
        var missing = MissingRows(ids);
        using var batch = new NpgsqlBatch(Db);
        if (terms.Count > 0)
        {
            var scores = new NpgsqlBatchCommand(ScoresSql);
            AddParameters(scores.Parameters, _kb, terms.ToArray(), weights.Title, weights.Headings, weights.Body, ids.ToArray());
            batch.BatchCommands.Add(scores);
        }
        if (missing.Length > 0) batch.BatchCommands.Add(RowsCommand(missing));
        if (batch.BatchCommands.Count == 0) return results;
        using var r = batch.ExecuteReader();
        if (terms.Count > 0)
        {
            while (r.Read()) results.Add((r.GetInt64(0), r.GetDouble(1)));
            r.NextResult();
        }
        if (missing.Length > 0) foreach (var _ in ReadRows(r, firstColumn: 0, _ => 0)) { }
        return results;
    }

    private static void AddParameters(NpgsqlParameterCollection parameters, params object?[] values)
    {
        foreach (var v in values)
            parameters.Add(v is long[] ? new NpgsqlParameter { Value = v, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint } : new NpgsqlParameter { Value = v ?? DBNull.Value });
    }
}
