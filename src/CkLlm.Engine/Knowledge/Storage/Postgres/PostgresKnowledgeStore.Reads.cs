using CkLlm.Engine.Knowledge.Ingestion;
using Npgsql;

namespace CkLlm.Engine.Knowledge.Storage.Postgres;

/// <summary>Reading sources, chunks, vectors and the change log; the metadata filter over jsonb.</summary>
internal sealed partial class PostgresKnowledgeStore
{
    private const string SourceColumns = "id, source, kind, format, content_hash, size, chunk_count, added_utc, updated_utc, metadata::text";

    public KnowledgeSource? FindSource(string source) => ReadSources($"SELECT {SourceColumns} FROM ckllm_sources WHERE kb_id = $1 AND source = $2", source).FirstOrDefault();

    public IReadOnlyList<KnowledgeSource> GetSources() => ReadSources($"SELECT {SourceColumns} FROM ckllm_sources WHERE kb_id = $1 ORDER BY source COLLATE \"C\"");

    private List<KnowledgeSource> ReadSources(string sql, params object[] parameters)
    {
        using var cmd = Command(sql, [_kb, .. parameters]);
        using var r = cmd.ExecuteReader();
        var list = new List<KnowledgeSource>();
        while (r.Read())
        {
            list.Add(new KnowledgeSource
            {
                Id = r.GetInt64(0), Source = r.GetString(1), Kind = Enum.Parse<SourceKind>(r.GetString(2)), Format = r.GetString(3),
                ContentHash = r.GetString(4), Size = r.GetInt64(5), Chunks = r.GetInt32(6),
                AddedUtc = r.GetDateTime(7).ToUniversalTime(), UpdatedUtc = r.GetDateTime(8).ToUniversalTime(),
                Metadata = StoredMetadata.Parse(r.IsDBNull(9) ? null : r.GetString(9)),
            });
        }
        return list;
    }

    public int CountSources() => Convert.ToInt32(Scalar("SELECT count(*) FROM ckllm_sources WHERE kb_id = $1", _kb), System.Globalization.CultureInfo.InvariantCulture);

    public int CountChunks() => Convert.ToInt32(Scalar("SELECT count(*) FROM ckllm_chunks WHERE kb_id = $1", _kb), System.Globalization.CultureInfo.InvariantCulture);

    public HashSet<long> GetChunkIds()
    {
        using var cmd = Command("SELECT id FROM ckllm_chunks WHERE kb_id = $1", _kb);
        using var r = cmd.ExecuteReader();
        var set = new HashSet<long>();
        while (r.Read()) set.Add(r.GetInt64(0));
        return set;
    }

    /// <summary>Vectors of rows held from the search in progress come from memory; the rest from the server.</summary>
    public IEnumerable<(long Id, float[] Vector)> ReadVectors(IReadOnlyCollection<long>? ids = null)
    {
        if (ids is { Count: 0 }) yield break;
        long[]? fetch = null;
        if (ids is not null)
        {
            var held = ids.Select(id => (Id: id, Vector: _rows.GetValueOrDefault(id)?.Vector)).ToList();
            foreach (var (id, v) in held)
                if (v is not null) yield return (id, v);
            fetch = held.Where(h => h.Vector is null).Select(h => h.Id).ToArray();
            if (fetch.Length == 0) yield break;
        }
        using var cmd = fetch is null
            ? Command("SELECT id, vector FROM ckllm_chunks WHERE kb_id = $1 ORDER BY id", _kb)
            : Command("SELECT id, vector FROM ckllm_chunks WHERE kb_id = $1 AND id = ANY($2) ORDER BY id", _kb, fetch);
        using var r = cmd.ExecuteReader();
        while (r.Read()) yield return (r.GetInt64(0), StoredVector.FromBytes((byte[])r.GetValue(1)));
    }

    public Dictionary<long, List<float[]>> ReadSourceVectors(IReadOnlyCollection<long> sourceIds)
    {
        var result = new Dictionary<long, List<float[]>>();
        if (sourceIds.Count == 0) return result;
        using var cmd = Command("SELECT source_id, vector FROM ckllm_chunks WHERE kb_id = $1 AND source_id = ANY($2) ORDER BY source_id, ordinal", _kb, sourceIds.ToArray());
        using var r = cmd.ExecuteReader();
        while (r.Read()) StoredVector.AddTo(result, r.GetInt64(0), (byte[])r.GetValue(1));
        return result;
    }

    /// <summary>Generations commit in order (the row lock), so every change up to the generation read is committed.
    /// One statement, so one snapshot: the generation, the trimmed horizon and the log slice agree even while a writer
    /// trims. Null when the log no longer reaches back to <paramref name="generation"/> (the caller then compares ids).</summary>
    public StoreChanges? ChangesSince(long generation)
    {
        if (generation < 0) return null;
        using var cmd = Command($"""
            WITH k AS (SELECT generation, coalesce((SELECT value::bigint FROM ckllm_meta WHERE kb_id = $1 AND key = '{ChangeLogHorizonKey}'), 0) AS horizon
                       FROM ckllm_knowledge_bases WHERE id = $1)
            SELECT k.generation, k.horizon, c.chunk_id, c.added
            FROM k LEFT JOIN ckllm_changes c ON c.kb_id = $1 AND $2 >= k.horizon AND c.generation > $2 AND c.generation <= k.generation
            """, _kb, generation);
        using var r = cmd.ExecuteReader();
        if (!r.Read()) throw NotFound(_location); // dropped by someone else while open
        long current = KeepRowsOf(r.GetInt64(0)), horizon = r.GetInt64(1);
        // Before the horizon: trimmed away. After the current generation: a cache from another incarnation's history.
        if (generation < horizon || generation > current) return null;
        var added = new List<long>();
        var removed = new List<long>();
        do
        {
            if (!r.IsDBNull(2)) (r.GetBoolean(3) ? added : removed).Add(r.GetInt64(2));
        }
        while (r.Read());
        return new StoreChanges(added, removed, current);
    }

    public Dictionary<long, StoredChunk> GetChunks(IReadOnlyCollection<long> ids)
    {
        var missing = MissingRows(ids);
        if (missing.Length > 0)
        {
            using var batch = new NpgsqlBatch(Db) { BatchCommands = { RowsCommand(missing) } };
            using var r = batch.ExecuteReader();
            foreach (var _ in ReadRows(r, firstColumn: 0, _ => 0)) { }
        }
        var result = new Dictionary<long, StoredChunk>();
        foreach (var id in ids)
            if (_rows.TryGetValue(id, out var row)) result[id] = row.Chunk;
        return result;
    }

    public Dictionary<long, long> SourceIdsOf(IReadOnlyCollection<long> ids)
    {
        var result = new Dictionary<long, long>();
        foreach (var id in ids)
            if (_rows.TryGetValue(id, out var row)) result[id] = row.Chunk.SourceId;
        var missing = MissingRows(ids);
        if (missing.Length == 0) return result;
        using var cmd = Command("SELECT id, source_id FROM ckllm_chunks WHERE kb_id = $1 AND id = ANY($2)", _kb, missing);
        using var r = cmd.ExecuteReader();
        while (r.Read()) result[r.GetInt64(0)] = r.GetInt64(1);
        return result;
    }

    /// <summary>Keys and values compare case-insensitively, as in the folder store.</summary>
    public HashSet<long> FilterChunkIds(IReadOnlyDictionary<string, string> filter)
    {
        var keys = filter.Keys.ToArray();
        var values = keys.Select(k => filter[k]).ToArray();
        using var cmd = Command("""
            SELECT c.id FROM ckllm_chunks c
            WHERE c.kb_id = $1 AND c.metadata IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM unnest($2::text[], $3::text[]) AS f(key, value)
                WHERE NOT EXISTS (SELECT 1 FROM jsonb_each_text(c.metadata) j WHERE lower(j.key) = lower(f.key) AND lower(j.value) = lower(f.value)))
            """, _kb, keys, values);
        using var r = cmd.ExecuteReader();
        var set = new HashSet<long>();
        while (r.Read()) set.Add(r.GetInt64(0));
        return set;
    }

    public List<StoredChunkText> ReadChunkTexts()
    {
        using var cmd = Command("""
            SELECT s.source, s.kind, c.text, c.heading, c.line_start, c.line_end, c.page
            FROM ckllm_chunks c JOIN ckllm_sources s ON s.id = c.source_id
            WHERE c.kb_id = $1 ORDER BY s.source COLLATE "C", c.ordinal
            """, _kb);
        using var r = cmd.ExecuteReader();
        var list = new List<StoredChunkText>();
        while (r.Read())
            list.Add(new StoredChunkText(r.GetString(0), Enum.Parse<SourceKind>(r.GetString(1)), r.GetString(2), NullableString(r, 3),
                NullableInt(r, 4), NullableInt(r, 5), NullableInt(r, 6)));
        return list;
    }

    public ExportedSource ExportSource(KnowledgeSource source)
    {
        var title = Scalar("SELECT title FROM ckllm_sources WHERE id = $1", source.Id) as string;
        var chunks = new List<DocumentChunk>();
        var vectors = new List<float[]>();
        using var cmd = Command("SELECT text, line_start, line_end, page, heading, metadata::text, token_count, vector FROM ckllm_chunks WHERE source_id = $1 ORDER BY ordinal", source.Id);
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            chunks.Add(new DocumentChunk(r.GetString(0), NullableInt(r, 1), NullableInt(r, 2), NullableInt(r, 3), NullableString(r, 4),
                StoredMetadata.Parse(NullableString(r, 5)), r.GetInt32(6)));
            vectors.Add(StoredVector.FromBytes((byte[])r.GetValue(7)));
        }
        return new ExportedSource(SourceRecord.Of(source, title), chunks, vectors);
    }

    private static int? NullableInt(NpgsqlDataReader r, int i) => r.IsDBNull(i) ? null : r.GetInt32(i);

    private static string? NullableString(NpgsqlDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);
}
