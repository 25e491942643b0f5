using Npgsql;

namespace CkLlm.Engine.Knowledge.Storage.Postgres;

/// <summary>
/// Chunk rows held between the calls of one search, so that a hybrid search costs three round trips (generation,
/// keyword search with its hits' rows, the vector candidates' keyword scores with their rows) instead of six. A chunk
/// row never changes while it exists (a replaced source gets new chunk ids), so a held row is right until a write
/// removes it: the rows are dropped whenever the generation moves, and when there are more than a search needs.
/// </summary>
internal sealed partial class PostgresKnowledgeStore
{
    private const int HeldRowLimit = 4096;

    /// <summary>What a hit shows, then the vector (null when not fetched: the HNSW cache has it).</summary>
    private const string RowColumns = "c.id, c.source_id, s.source, c.text, c.heading, c.line_start, c.line_end, c.page, c.metadata::text, s.title, c.vector";

    private sealed record HeldRow(StoredChunk Chunk, float[]? Vector);

    private readonly Dictionary<long, HeldRow> _rows = [];
    private long _rowsGeneration = -1;

    /// <summary>Called with every generation read: rows held from another generation may have been removed since.</summary>
    private long KeepRowsOf(long generation)
    {
        if (generation != _rowsGeneration) ForgetRows();
        _rowsGeneration = generation;
        return generation;
    }

    private void ForgetRows()
    {
        _rows.Clear();
        _rowsGeneration = -1;
    }

    private long[] MissingRows(IReadOnlyCollection<long> ids) => ids.Where(id => !_rows.ContainsKey(id)).Distinct().ToArray();

    /// <summary>The rows of <paramref name="ids"/> (without vectors), as a batch command.</summary>
    private NpgsqlBatchCommand RowsCommand(long[] ids)
    {
        var cmd = new NpgsqlBatchCommand($"SELECT {RowColumns.Replace("c.vector", "NULL::bytea", StringComparison.Ordinal)} " +
            "FROM ckllm_chunks c JOIN ckllm_sources s ON s.id = c.source_id WHERE c.kb_id = $1 AND c.id = ANY($2)");
        AddParameters(cmd.Parameters, _kb, ids);
        return cmd;
    }

    /// <summary>Reads <see cref="RowColumns"/> from <paramref name="firstColumn"/> on, remembers each row (a row
    /// already held keeps its vector if this one has none) and yields it with <paramref name="extra"/>.</summary>
    private IEnumerable<(HeldRow Row, T Extra)> ReadRows<T>(NpgsqlDataReader r, int firstColumn, Func<NpgsqlDataReader, T> extra)
    {
        while (r.Read())
        {
            int i = firstColumn;
            var chunk = new StoredChunk(r.GetInt64(i), r.GetInt64(i + 1), r.GetString(i + 2), r.GetString(i + 3), NullableString(r, i + 4),
                NullableInt(r, i + 5), NullableInt(r, i + 6), NullableInt(r, i + 7), StoredMetadata.Parse(NullableString(r, i + 8)), NullableString(r, i + 9));
            var vector = r.IsDBNull(i + 10) ? null : StoredVector.FromBytes((byte[])r.GetValue(i + 10));
            if (_rows.Count >= HeldRowLimit) _rows.Clear();
            var row = new HeldRow(chunk, vector ?? _rows.GetValueOrDefault(chunk.Id)?.Vector);
            _rows[chunk.Id] = row;
            yield return (row, extra(r));
        }
    }
}
