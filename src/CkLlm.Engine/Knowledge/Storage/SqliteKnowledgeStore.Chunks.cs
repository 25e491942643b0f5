using System.Globalization;
using System.Text;
using System.Text.Json;
using CkLlm.Engine.Knowledge.Ingestion;

namespace CkLlm.Engine.Knowledge.Storage;

/// <summary>Chunks: ids, vectors, rows for hits, the metadata filter and BM25 keyword search over FTS5.</summary>
internal sealed partial class SqliteKnowledgeStore
{
    public List<StoredChunkText> ReadChunkTexts()
    {
        using var cmd = Command("""
            SELECT s.source, s.kind, c.text, c.heading, c.line_start, c.line_end, c.page
            FROM chunks c JOIN sources s ON s.id = c.source_id
            ORDER BY s.source, c.ordinal
            """);
        using var r = cmd.ExecuteReader();
        var list = new List<StoredChunkText>();
        while (r.Read())
            list.Add(new StoredChunkText(r.GetString(0), Enum.Parse<SourceKind>(r.GetString(1)), r.GetString(2), r.IsDBNull(3) ? null : r.GetString(3),
                NullableInt(r, 4), NullableInt(r, 5), NullableInt(r, 6)));
        return list;
    }

    public HashSet<long> GetChunkIds()
    {
        var set = new HashSet<long>();
        using var cmd = Command("SELECT id FROM chunks");
        using var r = cmd.ExecuteReader();
        while (r.Read()) set.Add(r.GetInt64(0));
        return set;
    }

    public IEnumerable<(long Id, float[] Vector)> ReadVectors(IReadOnlyCollection<long>? ids = null)
    {
        if (ids is { Count: 0 }) yield break;
        using var cmd = Command(ids is null ? "SELECT id, vector FROM chunks ORDER BY id" : "SELECT id, vector FROM chunks WHERE id IN (SELECT value FROM json_each($ids)) ORDER BY id",
            ("$ids", ids is null ? null : JsonSerializer.Serialize(ids)));
        using var r = cmd.ExecuteReader();
        while (r.Read()) yield return (r.GetInt64(0), StoredVector.FromBytes((byte[])r.GetValue(1)));
    }

    public Dictionary<long, List<float[]>> ReadSourceVectors(IReadOnlyCollection<long> sourceIds)
    {
        var result = new Dictionary<long, List<float[]>>();
        if (sourceIds.Count == 0) return result;
        using var cmd = Command("SELECT source_id, vector FROM chunks WHERE source_id IN (SELECT value FROM json_each($ids)) ORDER BY source_id, ordinal",
            ("$ids", JsonSerializer.Serialize(sourceIds)));
        using var r = cmd.ExecuteReader();
        while (r.Read()) StoredVector.AddTo(result, r.GetInt64(0), (byte[])r.GetValue(1));
        return result;
    }

    /// <summary>BM25 over the FTS5 table; score = -bm25 (higher is better).</summary>
    public List<(long Id, double Score)> KeywordSearch(string query, int limit, KeywordWeights weights)
    {
        var match = KeywordQuery.ToMatchExpression(query);
        var results = new List<(long, double)>();
        if (match is null) return results;
        using var cmd = Command("SELECT rowid, bm25(chunks_fts, $wt, $wh, $wb) AS score FROM chunks_fts WHERE chunks_fts MATCH $q ORDER BY score LIMIT $n",
            ("$q", match), ("$n", limit), ("$wt", weights.Title), ("$wh", weights.Headings), ("$wb", weights.Body));
        using var r = cmd.ExecuteReader();
        while (r.Read()) results.Add((r.GetInt64(0), -r.GetDouble(1)));
        return results;
    }

    /// <summary>One full-text match for both: FTS5 answers <c>MATCH ... AND rowid IN (...)</c> with a separate match per
    /// id, which cost several times the whole search; the matched rows are kept in a temporary table and read twice instead.</summary>
    public (List<(long Id, double Score)> Top, List<(long Id, double Score)> Others) KeywordSearchAndScores(string query, int limit,
        IReadOnlyCollection<long> alsoScore, KeywordWeights weights)
    {
        var match = KeywordQuery.ToMatchExpression(query);
        List<(long, double)> top = [], others = [];
        if (match is null) return (top, others);
        using var cmd = Command("""
            WITH m AS MATERIALIZED (SELECT rowid AS id, bm25(chunks_fts, $wt, $wh, $wb) AS score FROM chunks_fts WHERE chunks_fts MATCH $q)
            SELECT id, score, 0 FROM (SELECT id, score FROM m ORDER BY score LIMIT $n)
            UNION ALL
            SELECT id, score, 1 FROM m WHERE id IN (SELECT value FROM json_each($ids))
            """,
            ("$q", match), ("$n", limit), ("$ids", JsonSerializer.Serialize(alsoScore)),
            ("$wt", weights.Title), ("$wh", weights.Headings), ("$wb", weights.Body));
        using var r = cmd.ExecuteReader();
        while (r.Read()) (r.GetInt32(2) == 0 ? top : others).Add((r.GetInt64(0), -r.GetDouble(1)));
        var topIds = top.Select(t => t.Item1).ToHashSet();
        others.RemoveAll(o => topIds.Contains(o.Item1));
        return (top, others);
    }

    public Dictionary<long, long> SourceIdsOf(IReadOnlyCollection<long> ids)
    {
        var result = new Dictionary<long, long>();
        if (ids.Count == 0) return result;
        using var cmd = Command("SELECT id, source_id FROM chunks WHERE id IN (SELECT value FROM json_each($ids))", ("$ids", JsonSerializer.Serialize(ids)));
        using var r = cmd.ExecuteReader();
        while (r.Read()) result[r.GetInt64(0)] = r.GetInt64(1);
        return result;
    }

    public Dictionary<long, StoredChunk> GetChunks(IReadOnlyCollection<long> ids)
    {
        var result = new Dictionary<long, StoredChunk>();
        if (ids.Count == 0) return result;
        using var cmd = Command("""
            SELECT c.id, c.source_id, s.source, c.text, c.heading, c.line_start, c.line_end, c.page, c.metadata, s.title
            FROM chunks c JOIN sources s ON s.id = c.source_id
            WHERE c.id IN (SELECT value FROM json_each($ids))
            """, ("$ids", JsonSerializer.Serialize(ids)));
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            var chunk = new StoredChunk(r.GetInt64(0), r.GetInt64(1), r.GetString(2), r.GetString(3),
                r.IsDBNull(4) ? null : r.GetString(4), NullableInt(r, 5), NullableInt(r, 6), NullableInt(r, 7),
                StoredMetadata.Parse(r.IsDBNull(8) ? null : r.GetString(8)), r.IsDBNull(9) ? null : r.GetString(9));
            result[chunk.Id] = chunk;
        }
        return result;
    }

    public HashSet<long> FilterChunkIds(IReadOnlyDictionary<string, string> filter)
    {
        var sql = new StringBuilder("SELECT id FROM chunks WHERE 1=1");
        var ps = new List<(string, object?)>();
        int i = 0;
        foreach (var (k, v) in filter)
        {
            sql.Append(CultureInfo.InvariantCulture, $" AND EXISTS (SELECT 1 FROM json_each(chunks.metadata) j WHERE lower(j.key) = lower($k{i}) AND lower(j.value) = lower($v{i}))");
            ps.Add(($"$k{i}", k));
            ps.Add(($"$v{i}", v));
            i++;
        }
        using var cmd = Command(sql.ToString(), ps.ToArray());
        using var r = cmd.ExecuteReader();
        var set = new HashSet<long>();
        while (r.Read()) set.Add(r.GetInt64(0));
        return set;
    }
}
