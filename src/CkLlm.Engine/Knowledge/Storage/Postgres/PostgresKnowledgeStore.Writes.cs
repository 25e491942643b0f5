using CkLlm.Engine.Knowledge.Ingestion;
using Npgsql;
using NpgsqlTypes;

namespace CkLlm.Engine.Knowledge.Storage.Postgres;

/// <summary>The two writes, each one transaction that starts by taking the next generation (and with it the knowledge
/// base's row lock), logs every chunk id it adds or removes under that generation, and keeps the keyword statistics
/// (chunk count, total indexed tokens) that BM25 needs.</summary>
internal sealed partial class PostgresKnowledgeStore
{
    private static readonly string TsvExpression = PostgresSchema.WeightedTsvector("$3", "x.heading", "x.text");

    public StoreCommit ReplaceSource(SourceRecord source, IReadOnlyList<DocumentChunk> chunks, IReadOnlyList<float[]> vectors)
    {
        var db = Db;
        ForgetRows();
        using var tx = db.BeginTransaction();
        var generation = NextGeneration(db, tx);
        var (removed, removedTokens) = DeleteChunks(db, tx, "source_id = (SELECT id FROM ckllm_sources WHERE kb_id = $1 AND source = $2)", _kb, source.Source);

        long sourceId;
        using (var upsert = new NpgsqlCommand("""
            INSERT INTO ckllm_sources(kb_id, source, kind, format, content_hash, size, chunk_count, added_utc, updated_utc, metadata, title)
            VALUES ($1, $2, $3, $4, $5, $6, $7, now(), now(), $8::jsonb, $9)
            ON CONFLICT (kb_id, source) DO UPDATE SET kind = excluded.kind, format = excluded.format, content_hash = excluded.content_hash,
                size = excluded.size, chunk_count = excluded.chunk_count, updated_utc = excluded.updated_utc, metadata = excluded.metadata, title = excluded.title
            RETURNING id
            """, db, tx))
        {
            AddParameters(upsert, _kb, source.Source, source.Kind.ToString(), source.Format, source.ContentHash, source.Size, chunks.Count,
                StoredMetadata.Serialize(source.Metadata), source.Title);
            sourceId = (long)upsert.ExecuteScalar()!;
        }

        var ids = new long[chunks.Count];
        long addedTokens = 0;
        if (chunks.Count > 0)
        {
            // One statement for the whole source: arrays in, the tsvector built by the server next to the row.
            if (HasPgvector) EnsurePgvectorIndex(db, tx, vectors[0].Length);
            using var insert = new NpgsqlCommand($"""
                INSERT INTO ckllm_chunks(kb_id, source_id, ordinal, text, heading, line_start, line_end, page, token_count, metadata, vector, tsv, tsv_length{(HasPgvector ? ", embedding" : "")})
                SELECT $1, $2, x.ordinal, x.text, x.heading, x.line_start, x.line_end, x.page, x.token_count, x.metadata::jsonb, x.vector, v.tsv,
                       (SELECT coalesce(sum(array_length(positions, 1)), 0) FROM unnest(v.tsv)){(HasPgvector ? ", x.embedding::vector" : "")}
                FROM unnest($4::int[], $5::text[], $6::text[], $7::int[], $8::int[], $9::int[], $10::int[], $11::text[], $12::bytea[]{(HasPgvector ? ", $13::text[]" : "")})
                     AS x(ordinal, text, heading, line_start, line_end, page, token_count, metadata, vector{(HasPgvector ? ", embedding" : "")})
                CROSS JOIN LATERAL (SELECT {TsvExpression} AS tsv) v
                RETURNING ordinal, id, tsv_length
                """, db, tx);
            AddParameters(insert, _kb, sourceId, source.Title);
            insert.Parameters.Add(Array(Enumerable.Range(0, chunks.Count).ToArray(), NpgsqlDbType.Integer));
            insert.Parameters.Add(Array(chunks.Select(c => c.Text).ToArray(), NpgsqlDbType.Text));
            insert.Parameters.Add(Array(chunks.Select(c => c.Heading).ToArray(), NpgsqlDbType.Text));
            insert.Parameters.Add(Array(chunks.Select(c => c.LineStart).ToArray(), NpgsqlDbType.Integer));
            insert.Parameters.Add(Array(chunks.Select(c => c.LineEnd).ToArray(), NpgsqlDbType.Integer));
            insert.Parameters.Add(Array(chunks.Select(c => c.Page).ToArray(), NpgsqlDbType.Integer));
            insert.Parameters.Add(Array(chunks.Select(c => c.TokenCount).ToArray(), NpgsqlDbType.Integer));
            insert.Parameters.Add(Array(chunks.Select(c => StoredMetadata.Serialize(StoredMetadata.Merge(source.Metadata, c.Metadata))).ToArray(), NpgsqlDbType.Text));
            insert.Parameters.Add(Array(vectors.Select(StoredVector.ToBytes).ToArray(), NpgsqlDbType.Bytea));
            if (HasPgvector) insert.Parameters.Add(Array(vectors.Select(PgvectorIndex.ToLiteral).ToArray(), NpgsqlDbType.Text));
            using var r = insert.ExecuteReader();
            while (r.Read())
            {
                ids[r.GetInt32(0)] = r.GetInt64(1);
                addedTokens += r.GetInt32(2);
            }
        }
        if (chunks.Count > 0)
        {
            using var postings = new NpgsqlCommand(string.Format(System.Globalization.CultureInfo.InvariantCulture, PostgresSchema.InsertPostings, "c.source_id = $1"), db, tx);
            AddParameters(postings, sourceId);
            postings.ExecuteNonQuery();
        }
        LogChanges(db, tx, generation, ids, removed);
        UpdateStatistics(db, tx, ids.Length - removed.Length, addedTokens - removedTokens);
        if (generation % ChangeLogTrimInterval == 0) TrimChangeLog(db, tx, ChangeLogMinimumRows);
        tx.Commit();
        return new StoreCommit(sourceId, ids, removed, generation);
    }

    public StoreCommit RemoveSources(IReadOnlyCollection<long> sourceIds)
    {
        var db = Db;
        ForgetRows();
        using var tx = db.BeginTransaction();
        var generation = NextGeneration(db, tx);
        var ids = sourceIds.ToArray();
        var (removed, removedTokens) = DeleteChunks(db, tx, "source_id = ANY($2)", _kb, ids);
        using (var del = new NpgsqlCommand("DELETE FROM ckllm_sources WHERE kb_id = $1 AND id = ANY($2)", db, tx))
        {
            AddParameters(del, _kb, ids);
            del.ExecuteNonQuery();
        }
        LogChanges(db, tx, generation, [], removed);
        UpdateStatistics(db, tx, -removed.Length, -removedTokens);
        if (generation % ChangeLogTrimInterval == 0) TrimChangeLog(db, tx, ChangeLogMinimumRows);
        tx.Commit();
        return new StoreCommit(0, [], removed, generation);
    }

    private bool _pgvectorIndexed;

    /// <summary>UNTESTED: pgvector's HNSW index over the vectors of one dimension (an expression index, since the column
    /// is dimensionless so knowledge bases of different embedders can share the table).</summary>
    private void EnsurePgvectorIndex(NpgsqlConnection db, NpgsqlTransaction tx, int dimensions)
    {
        if (_pgvectorIndexed) return;
        using var cmd = new NpgsqlCommand($"CREATE INDEX IF NOT EXISTS ckllm_chunks_embedding_{dimensions} ON ckllm_chunks " +
            $"USING hnsw ((embedding::vector({dimensions})) vector_cosine_ops)", db, tx);
        cmd.ExecuteNonQuery();
        _pgvectorIndexed = true;
    }

    /// <summary>Takes the next generation; the row lock it leaves is held to commit, so writers of one knowledge base
    /// queue here and each sees the others' committed sources (no duplicates when two add the same file).</summary>
    private long NextGeneration(NpgsqlConnection db, NpgsqlTransaction tx)
    {
        using var cmd = new NpgsqlCommand("UPDATE ckllm_knowledge_bases SET generation = generation + 1 WHERE id = $1 RETURNING generation", db, tx);
        AddParameters(cmd, _kb);
        return cmd.ExecuteScalar() is long g ? g : throw NotFound(_location);
    }

    private static (long[] Ids, long Tokens) DeleteChunks(NpgsqlConnection db, NpgsqlTransaction tx, string where, params object[] parameters)
    {
        // The chunks' postings go in the same statement, found through their own lexemes (the postings' key).
        using var cmd = new NpgsqlCommand($"""
            WITH gone AS (DELETE FROM ckllm_chunks WHERE kb_id = $1 AND {where} RETURNING id, tsv, tsv_length),
            postings AS (DELETE FROM ckllm_postings p USING gone CROSS JOIN LATERAL unnest(tsvector_to_array(gone.tsv)) l(lexeme)
                         WHERE p.kb_id = $1 AND p.lexeme = l.lexeme AND p.chunk_id = gone.id)
            SELECT id, tsv_length FROM gone
            """, db, tx);
        AddParameters(cmd, parameters);
        var ids = new List<long>();
        long tokens = 0;
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            ids.Add(r.GetInt64(0));
            tokens += r.GetInt32(1);
        }
        return (ids.ToArray(), tokens);
    }

    private void LogChanges(NpgsqlConnection db, NpgsqlTransaction tx, long generation, long[] added, long[] removed)
    {
        using var cmd = new NpgsqlCommand("""
            INSERT INTO ckllm_changes(kb_id, generation, chunk_id, added)
            SELECT $1, $2, id, true FROM unnest($3::bigint[]) id UNION ALL SELECT $1, $2, id, false FROM unnest($4::bigint[]) id
            """, db, tx);
        AddParameters(cmd, _kb, generation, added, removed);
        cmd.ExecuteNonQuery();
    }

    /// <summary>Where the change log starts: changes of this generation and older were trimmed away (meta value).</summary>
    private const string ChangeLogHorizonKey = "changes_horizon";

    /// <summary>Every this many generations a write trims the change log.</summary>
    internal int ChangeLogTrimInterval { get; set; } = 64;

    /// <summary>The log keeps at least this many rows, and at least as many as the knowledge base has chunks: a reader
    /// further behind than that would fetch about as many vectors catching up as it does rebuilding its cache.</summary>
    internal long ChangeLogMinimumRows { get; set; } = 10_000;

    /// <summary>Trims the oldest generations of the change log so that at most max(<paramref name="minimumRows"/>, chunk
    /// count) rows remain, and records the new horizon in the same transaction (a reader sees both or neither).</summary>
    private void TrimChangeLog(NpgsqlConnection db, NpgsqlTransaction tx, long minimumRows)
    {
        using var cmd = new NpgsqlCommand($"""
            WITH per_generation AS (SELECT generation, count(*) AS n FROM ckllm_changes WHERE kb_id = $1 GROUP BY generation),
            kept_from AS (SELECT generation, sum(n) OVER (ORDER BY generation DESC) AS rows_from FROM per_generation),
            horizon AS (SELECT max(generation) AS h FROM kept_from
                        WHERE rows_from > greatest($2, (SELECT chunk_count FROM ckllm_knowledge_bases WHERE id = $1))),
            trimmed AS (DELETE FROM ckllm_changes WHERE kb_id = $1 AND generation <= (SELECT h FROM horizon))
            INSERT INTO ckllm_meta(kb_id, key, value) SELECT $1, '{ChangeLogHorizonKey}', h::text FROM horizon WHERE h IS NOT NULL
            ON CONFLICT (kb_id, key) DO UPDATE SET value = excluded.value
            """, db, tx);
        AddParameters(cmd, _kb, minimumRows);
        cmd.ExecuteNonQuery();
    }

    /// <summary>Trims the change log now (what writes do every <see cref="ChangeLogTrimInterval"/> generations).</summary>
    internal void TrimChangeLog(long minimumRows)
    {
        var db = Db;
        using var tx = db.BeginTransaction();
        using (var lockRow = new NpgsqlCommand("SELECT 1 FROM ckllm_knowledge_bases WHERE id = $1 FOR UPDATE", db, tx))
        {
            AddParameters(lockRow, _kb);
            lockRow.ExecuteNonQuery(); // as writers trim: under the knowledge base's row lock
        }
        TrimChangeLog(db, tx, minimumRows);
        tx.Commit();
    }

    private void UpdateStatistics(NpgsqlConnection db, NpgsqlTransaction tx, long chunkDelta, long tokenDelta)
    {
        using var cmd = new NpgsqlCommand("UPDATE ckllm_knowledge_bases SET chunk_count = chunk_count + $2, token_total = token_total + $3 WHERE id = $1", db, tx);
        AddParameters(cmd, _kb, chunkDelta, tokenDelta);
        cmd.ExecuteNonQuery();
    }

    private static void AddParameters(NpgsqlCommand cmd, params object?[] values)
    {
        foreach (var v in values) cmd.Parameters.Add(new NpgsqlParameter { Value = v ?? DBNull.Value });
    }

    private static NpgsqlParameter Array<T>(T[] values, NpgsqlDbType elementType) =>
        new() { Value = values, NpgsqlDbType = NpgsqlDbType.Array | elementType };
}
