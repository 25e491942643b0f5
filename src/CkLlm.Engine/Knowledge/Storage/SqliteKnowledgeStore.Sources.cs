using System.Globalization;
using CkLlm.Engine.Knowledge.Ingestion;
using Microsoft.Data.Sqlite;

namespace CkLlm.Engine.Knowledge.Storage;

/// <summary>Sources: reading them, and the two writes (replace one source with its chunks, remove sources).</summary>
internal sealed partial class SqliteKnowledgeStore
{
    private const string SourceColumns = "id, source, kind, format, content_hash, size, chunk_count, added_utc, updated_utc, metadata";

    public KnowledgeSource? FindSource(string source)
    {
        using var cmd = Command($"SELECT {SourceColumns} FROM sources WHERE source = $s", ("$s", source));
        using var r = cmd.ExecuteReader();
        return r.Read() ? ReadSource(r) : null;
    }

    public IReadOnlyList<KnowledgeSource> GetSources()
    {
        using var cmd = Command($"SELECT {SourceColumns} FROM sources ORDER BY source");
        using var r = cmd.ExecuteReader();
        var list = new List<KnowledgeSource>();
        while (r.Read()) list.Add(ReadSource(r));
        return list;
    }

    private static KnowledgeSource ReadSource(SqliteDataReader r) => new()
    {
        Id = r.GetInt64(0),
        Source = r.GetString(1),
        Kind = Enum.Parse<SourceKind>(r.GetString(2)),
        Format = r.GetString(3),
        ContentHash = r.GetString(4),
        Size = r.GetInt64(5),
        Chunks = r.GetInt32(6),
        AddedUtc = DateTime.Parse(r.GetString(7), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind),
        UpdatedUtc = DateTime.Parse(r.GetString(8), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind),
        Metadata = StoredMetadata.Parse(r.IsDBNull(9) ? null : r.GetString(9)),
    };

    public int CountChunks() => Convert.ToInt32(Scalar("SELECT count(*) FROM chunks"), CultureInfo.InvariantCulture);

    public int CountSources() => Convert.ToInt32(Scalar("SELECT count(*) FROM sources"), CultureInfo.InvariantCulture);

    public StoreCommit ReplaceSource(SourceRecord source, IReadOnlyList<DocumentChunk> chunks, IReadOnlyList<float[]> vectors)
    {
        using var tx = _db.BeginTransaction();
        var now = DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture);
        var existing = FindSourceId(source.Source, tx);
        long[] removed = existing is { } old ? DeleteChunks(old, tx) : [];
        long sourceId;
        using (var cmd = Command(existing is null
            ? "INSERT INTO sources(source, kind, format, content_hash, size, chunk_count, added_utc, updated_utc, metadata, title) VALUES($s,$k,$f,$h,$z,$n,$t,$t,$m,$ti) RETURNING id"
            : "UPDATE sources SET kind=$k, format=$f, content_hash=$h, size=$z, chunk_count=$n, updated_utc=$t, metadata=$m, title=$ti WHERE id=$id RETURNING id",
            ("$s", source.Source), ("$k", source.Kind.ToString()), ("$f", source.Format), ("$h", source.ContentHash), ("$z", source.Size),
            ("$n", chunks.Count), ("$t", now), ("$m", StoredMetadata.Serialize(source.Metadata)), ("$ti", source.Title), ("$id", existing ?? 0)))
        {
            cmd.Transaction = tx;
            sourceId = (long)cmd.ExecuteScalar()!;
        }

        var ids = new long[chunks.Count];
        using (var insert = Command("INSERT INTO chunks(source_id, ordinal, text, heading, line_start, line_end, page, token_count, metadata, vector) VALUES($s,$o,$t,$h,$l1,$l2,$p,$n,$m,$v) RETURNING id"))
        using (var fts = Command("INSERT INTO chunks_fts(rowid, title, headings, body) VALUES($id, $ti, $h, $t)"))
        {
            insert.Transaction = tx;
            fts.Transaction = tx;
            for (int i = 0; i < chunks.Count; i++)
            {
                var c = chunks[i];
                var merged = StoredMetadata.Merge(source.Metadata, c.Metadata);
                SetParams(insert, ("$s", sourceId), ("$o", i), ("$t", c.Text), ("$h", c.Heading), ("$l1", c.LineStart), ("$l2", c.LineEnd),
                    ("$p", c.Page), ("$n", c.TokenCount), ("$m", StoredMetadata.Serialize(merged)), ("$v", StoredVector.ToBytes(vectors[i])));
                ids[i] = (long)insert.ExecuteScalar()!;
                SetParams(fts, ("$id", ids[i]), ("$ti", source.Title), ("$h", c.Heading), ("$t", c.Text));
                fts.ExecuteNonQuery();
            }
        }
        var generation = BumpGeneration(tx);
        tx.Commit();
        return new StoreCommit(sourceId, ids, removed, generation);
    }

    public StoreCommit RemoveSources(IReadOnlyCollection<long> sourceIds)
    {
        using var tx = _db.BeginTransaction();
        var removed = new List<long>();
        foreach (var id in sourceIds)
        {
            removed.AddRange(DeleteChunks(id, tx));
            using var cmd = Command("DELETE FROM sources WHERE id = $id", ("$id", id));
            cmd.Transaction = tx;
            cmd.ExecuteNonQuery();
        }
        var generation = BumpGeneration(tx);
        tx.Commit();
        return new StoreCommit(0, [], removed.ToArray(), generation);
    }

    private long? FindSourceId(string source, SqliteTransaction tx)
    {
        using var cmd = Command("SELECT id FROM sources WHERE source = $s", ("$s", source));
        cmd.Transaction = tx;
        return cmd.ExecuteScalar() as long?;
    }

    private long[] DeleteChunks(long sourceId, SqliteTransaction tx)
    {
        var ids = new List<long>();
        using (var select = Command("SELECT id FROM chunks WHERE source_id = $s", ("$s", sourceId)))
        {
            select.Transaction = tx;
            using var r = select.ExecuteReader();
            while (r.Read()) ids.Add(r.GetInt64(0));
        }
        using (var fts = Command("DELETE FROM chunks_fts WHERE rowid IN (SELECT id FROM chunks WHERE source_id = $s)", ("$s", sourceId)))
        {
            fts.Transaction = tx;
            fts.ExecuteNonQuery();
        }
        using (var del = Command("DELETE FROM chunks WHERE source_id = $s", ("$s", sourceId)))
        {
            del.Transaction = tx;
            del.ExecuteNonQuery();
        }
        return ids.ToArray();
    }

    public ExportedSource ExportSource(KnowledgeSource source)
    {
        string? title;
        using (var t = Command("SELECT title FROM sources WHERE id = $id", ("$id", source.Id))) title = t.ExecuteScalar() as string;
        using var cmd = Command("SELECT text, line_start, line_end, page, heading, metadata, token_count, vector FROM chunks WHERE source_id = $s ORDER BY ordinal", ("$s", source.Id));
        using var r = cmd.ExecuteReader();
        var chunks = new List<DocumentChunk>();
        var vectors = new List<float[]>();
        while (r.Read())
        {
            chunks.Add(new DocumentChunk(r.GetString(0), NullableInt(r, 1), NullableInt(r, 2), NullableInt(r, 3), r.IsDBNull(4) ? null : r.GetString(4),
                StoredMetadata.Parse(r.IsDBNull(5) ? null : r.GetString(5)), r.GetInt32(6)));
            vectors.Add(StoredVector.FromBytes((byte[])r.GetValue(7)));
        }
        return new ExportedSource(SourceRecord.Of(source, title), chunks, vectors);
    }

    private static int? NullableInt(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : r.GetInt32(i);
}
