namespace CkLlm.Engine.Knowledge.Storage.Postgres;

/// <summary>
/// Keyword search in the server: the GIN index on the weighted tsvector (title A, headings B, body C) finds the chunks
/// with any query term, and they are scored with the same BM25 as FTS5's bm25() (k1 = 1.2, b = 0.75, idf floored at
/// 1e-6, column weights multiplying term frequencies), from the positions and weight labels the tsvector keeps and the
/// chunk count and token total kept on the knowledge base's row. Tokenising differs (PostgreSQL's parser and English
/// Snowball stemmer with stop words vs FTS5's unicode61 + porter), so scores are close, not identical.
/// </summary>
internal sealed partial class PostgresKnowledgeStore
{
    private static readonly string Bm25Query = $"""
        WITH q AS (
            SELECT DISTINCT lexeme
            FROM unnest($2::text[]) AS t(term)
            CROSS JOIN LATERAL unnest(tsvector_to_array(to_tsvector('{PostgresSchema.TextSearchConfig}', t.term))) AS lexeme),
        query AS (SELECT string_agg(quote_literal(lexeme), ' | ')::tsquery AS tsq FROM q),
        stats AS (SELECT greatest(chunk_count, 1)::float8 AS n, greatest(token_total, 1)::float8 / greatest(chunk_count, 1) AS avgdl
                  FROM ckllm_knowledge_bases WHERE id = $1),
        df AS (SELECT q.lexeme, (SELECT count(*) FROM ckllm_chunks c WHERE c.kb_id = $1 AND c.tsv @@ quote_literal(q.lexeme)::tsquery) AS hits FROM q),
        matches AS (
            SELECT c.id, c.tsv, c.tsv_length FROM ckllm_chunks c, query
            WHERE c.kb_id = $1 AND c.tsv @@ query.tsq AND ($6::bigint[] IS NULL OR c.id = ANY($6))),
        tf AS (
            SELECT m.id, m.tsv_length, u.lexeme,
                   (SELECT sum(CASE w WHEN 'A' THEN $3 WHEN 'B' THEN $4 ELSE $5 END) FROM unnest(u.weights) w) AS f
            FROM matches m CROSS JOIN LATERAL unnest(m.tsv) u
            WHERE u.lexeme IN (SELECT lexeme FROM q))
        SELECT tf.id, sum(greatest(ln((s.n - df.hits + 0.5) / (df.hits + 0.5)), 1e-6) * (tf.f * 2.2)
                          / (tf.f + 1.2 * (0.25 + 0.75 * tf.tsv_length / s.avgdl))) AS score
        FROM tf JOIN df USING (lexeme) CROSS JOIN stats s
        GROUP BY tf.id
        ORDER BY score DESC, tf.id
        LIMIT $7
        """;

    public List<(long Id, double Score)> KeywordSearch(string query, int limit, KeywordWeights weights) =>
        Keyword(query, null, limit, weights);

    public List<(long Id, double Score)> KeywordScores(string query, IReadOnlyCollection<long> ids, KeywordWeights weights) =>
        ids.Count == 0 ? [] : Keyword(query, ids.ToArray(), ids.Count, weights);

    private List<(long Id, double Score)> Keyword(string query, long[]? ids, int limit, KeywordWeights weights)
    {
        var terms = KeywordQuery.Terms(query);
        var results = new List<(long, double)>();
        if (terms.Count == 0) return results;
        using var cmd = Command(Bm25Query, _kb, terms.ToArray(), weights.Title, weights.Headings, weights.Body, ids, limit);
        cmd.Parameters[5].NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Bigint;
        using var r = cmd.ExecuteReader();
        while (r.Read()) results.Add((r.GetInt64(0), r.GetDouble(1)));
        return results;
    }
}
