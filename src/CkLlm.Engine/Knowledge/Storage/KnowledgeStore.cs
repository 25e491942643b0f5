using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using CkLlm.Engine.Knowledge.Ingestion;
using Microsoft.Data.Sqlite;

namespace CkLlm.Engine.Knowledge.Storage;

/// <summary>Row of the chunks table as search needs it.</summary>
internal sealed record StoredChunk(long Id, long SourceId, string Source, string Text, string? Heading,
    int? LineStart, int? LineEnd, int? Page, IReadOnlyDictionary<string, string> Metadata, string? Title = null);

/// <summary>A chunk's text with what tells whether it continues the previous chunk.</summary>
internal sealed record StoredChunkText(string Source, SourceKind Kind, string Text, string? Heading, int? LineStart, int? LineEnd, int? Page);

/// <summary>
/// The SQLite database that holds everything the user added: sources (with content hash), chunks (text, line range,
/// page, heading path, metadata JSON, vector blob) and an FTS5 table for BM25. The HNSW index is only a cache of it.
/// Every write bumps <c>generation</c> in the same transaction so index files can tell whether they are current.
/// </summary>
internal sealed class KnowledgeStore : IDisposable
{
    public const int SchemaVersion = 2;

    /// <summary>Version 1 had one FTS5 blob (text, heading) and no document titles; it is migrated on open.</summary>
    private const int FirstSchemaVersion = 1;
    private readonly SqliteConnection _db;
    private readonly string _path;

    /// <param name="readOnly">Open an existing database for reading only: no schema changes, no writes, so it is safe
    /// next to a writer in another process (WAL readers never block or get blocked).</param>
    public KnowledgeStore(string path, bool readOnly = false)
    {
        _path = path;
        var builder = new SqliteConnectionStringBuilder
        {
            DataSource = path, Mode = readOnly ? SqliteOpenMode.ReadOnly : SqliteOpenMode.ReadWriteCreate, Pooling = false, DefaultTimeout = 30,
        };
        _db = new SqliteConnection(builder.ToString());
        try
        {
            _db.Open();
            Exec("PRAGMA busy_timeout=30000;");
            if (readOnly)
            {
                CheckSchemaVersion(readOnly: true);
            }
            else
            {
                Exec("PRAGMA journal_mode=WAL;");
                Exec("PRAGMA synchronous=NORMAL;");
                Exec("PRAGMA foreign_keys=ON;");
                EnsureSchema();
            }
            // Touch every table's b-tree so a truncated or overwritten file fails here, not mid-search.
            Exec("SELECT count(*) FROM sources; SELECT count(*), max(id) FROM chunks;");
            var check = Scalar("PRAGMA quick_check(1);") as string;
            if (!string.Equals(check, "ok", StringComparison.OrdinalIgnoreCase))
                throw new KnowledgeBaseCorruptException($"The knowledge base database '{path}' is damaged: {check}");
        }
        catch (SqliteException ex) when (IsCorruption(ex))
        {
            _db.Dispose();
            throw Corrupt(path, ex);
        }
        catch
        {
            _db.Dispose();
            throw;
        }
    }

    public static bool IsCorruption(SqliteException ex) => ex.SqliteErrorCode is 11 or 26; // SQLITE_CORRUPT, SQLITE_NOTADB

    public static KnowledgeBaseCorruptException Corrupt(string path, Exception ex) =>
        new($"The knowledge base database '{path}' is damaged or not a CkLlm knowledge base ({ex.Message}). " +
            "Restore it from a backup or delete the directory and add the sources again.", ex);

    private void EnsureSchema()
    {
        Exec("""
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS sources (
                id INTEGER PRIMARY KEY,
                source TEXT NOT NULL UNIQUE,
                kind TEXT NOT NULL,
                format TEXT NOT NULL,
                content_hash TEXT NOT NULL,
                size INTEGER NOT NULL,
                chunk_count INTEGER NOT NULL,
                added_utc TEXT NOT NULL,
                updated_utc TEXT NOT NULL,
                metadata TEXT,
                title TEXT);
            CREATE TABLE IF NOT EXISTS chunks (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                source_id INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
                ordinal INTEGER NOT NULL,
                text TEXT NOT NULL,
                heading TEXT,
                line_start INTEGER,
                line_end INTEGER,
                page INTEGER,
                token_count INTEGER NOT NULL,
                metadata TEXT,
                vector BLOB NOT NULL);
            CREATE INDEX IF NOT EXISTS chunks_source ON chunks(source_id);
            """);
        var version = GetMeta("schema_version");
        if (version == FirstSchemaVersion.ToString(CultureInfo.InvariantCulture)) MigrateFromVersion1();
        Exec(CreateFtsTable);
        if (version is null) SetMeta("schema_version", SchemaVersion.ToString(CultureInfo.InvariantCulture));
        CheckSchemaVersion();
    }

    // Separate columns so bm25() can weigh a match in the document title or heading path above one in the body.
    private const string CreateFtsTable = "CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(title, headings, body, tokenize='porter unicode61');";

    /// <summary>Version 1 → 2: adds source titles and rebuilds the keyword index with title/headings/body columns,
    /// in one transaction. Titles come from the source names (the documents are not read again); the vectors stay
    /// as they were embedded.</summary>
    private void MigrateFromVersion1()
    {
        using var tx = _db.BeginTransaction();
        using (var cmd = Command("SELECT count(*) FROM pragma_table_info('sources') WHERE name = 'title'"))
        {
            cmd.Transaction = tx;
            if (Convert.ToInt32(cmd.ExecuteScalar(), CultureInfo.InvariantCulture) == 0) Exec("ALTER TABLE sources ADD COLUMN title TEXT;", tx);
        }
        var titles = new List<(long Id, string? Title)>();
        using (var cmd = Command("SELECT id, source, kind FROM sources"))
        {
            cmd.Transaction = tx;
            using var r = cmd.ExecuteReader();
            while (r.Read()) titles.Add((r.GetInt64(0), ChunkContext.TitleFromSourceName(r.GetString(1), Enum.Parse<SourceKind>(r.GetString(2)))));
        }
        using (var update = Command("UPDATE sources SET title = $t WHERE id = $id"))
        {
            update.Transaction = tx;
            foreach (var (id, title) in titles)
            {
                SetParams(update, ("$t", title), ("$id", id));
                update.ExecuteNonQuery();
            }
        }
        Exec("DROP TABLE IF EXISTS chunks_fts;", tx);
        Exec(CreateFtsTable, tx);
        Exec("INSERT INTO chunks_fts(rowid, title, headings, body) SELECT c.id, s.title, c.heading, c.text FROM chunks c JOIN sources s ON s.id = c.source_id;", tx);
        SetMeta("schema_version", SchemaVersion.ToString(CultureInfo.InvariantCulture), tx);
        tx.Commit();
    }

    /// <summary>Writers need the current version; read-only readers (which only read sources and chunks, unchanged since
    /// version 1) also accept the first version, so a knowledge base not yet migrated can be read next to a writer.</summary>
    private void CheckSchemaVersion(bool readOnly = false)
    {
        var version = GetMeta("schema_version");
        if (version == SchemaVersion.ToString(CultureInfo.InvariantCulture)) return;
        if (readOnly && version == FirstSchemaVersion.ToString(CultureInfo.InvariantCulture)) return;
        throw new KnowledgeBaseException($"The knowledge base '{_path}' has schema version {version ?? "(none)"}; this CkLlm reads version {SchemaVersion}.");
    }

    /// <summary>Every chunk's text and position, by source name then chunk order: what the documents looked like.</summary>
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
                r.IsDBNull(4) ? null : r.GetInt32(4), r.IsDBNull(5) ? null : r.GetInt32(5), r.IsDBNull(6) ? null : r.GetInt32(6)));
        return list;
    }

    public string? GetMeta(string key)
    {
        using var cmd = Command("SELECT value FROM meta WHERE key = $k", ("$k", key));
        return cmd.ExecuteScalar() as string;
    }

    public void SetMeta(string key, string value, SqliteTransaction? tx = null)
    {
        using var cmd = Command("INSERT INTO meta(key, value) VALUES($k, $v) ON CONFLICT(key) DO UPDATE SET value = excluded.value", ("$k", key), ("$v", value));
        cmd.Transaction = tx;
        cmd.ExecuteNonQuery();
    }

    public long Generation => long.TryParse(GetMeta("generation"), out var g) ? g : 0;

    private void BumpGeneration(SqliteTransaction tx)
    {
        using var cmd = Command("INSERT INTO meta(key, value) VALUES('generation', '1') ON CONFLICT(key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)");
        cmd.Transaction = tx;
        cmd.ExecuteNonQuery();
    }

    public KnowledgeSource? FindSource(string source)
    {
        using var cmd = Command("SELECT id, source, kind, format, content_hash, size, chunk_count, added_utc, updated_utc, metadata FROM sources WHERE source = $s", ("$s", source));
        using var r = cmd.ExecuteReader();
        return r.Read() ? ReadSource(r) : null;
    }

    public IReadOnlyList<KnowledgeSource> GetSources()
    {
        using var cmd = Command("SELECT id, source, kind, format, content_hash, size, chunk_count, added_utc, updated_utc, metadata FROM sources ORDER BY source");
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
        Metadata = ParseMetadata(r.IsDBNull(9) ? null : r.GetString(9)),
    };

    /// <summary>Replaces a source and all its chunks in one transaction: after a crash it is either fully old or fully new.</summary>
    public (long SourceId, long[] ChunkIds, long[] RemovedChunkIds) ReplaceSource(string source, SourceKind kind, string format, string hash, long size,
        string? title, IReadOnlyDictionary<string, string>? metadata, IReadOnlyList<DocumentChunk> chunks, IReadOnlyList<float[]> vectors)
    {
        using var tx = _db.BeginTransaction();
        var now = DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture);
        var existing = FindSourceId(source, tx);
        long[] removed = existing is { } old ? DeleteChunks(old, tx) : [];
        long sourceId;
        using (var cmd = Command(existing is null
            ? "INSERT INTO sources(source, kind, format, content_hash, size, chunk_count, added_utc, updated_utc, metadata, title) VALUES($s,$k,$f,$h,$z,$n,$t,$t,$m,$ti) RETURNING id"
            : "UPDATE sources SET kind=$k, format=$f, content_hash=$h, size=$z, chunk_count=$n, updated_utc=$t, metadata=$m, title=$ti WHERE id=$id RETURNING id",
            ("$s", source), ("$k", kind.ToString()), ("$f", format), ("$h", hash), ("$z", size), ("$n", chunks.Count), ("$t", now),
            ("$m", SerializeMetadata(metadata)), ("$ti", title), ("$id", existing ?? 0)))
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
                var merged = Merge(metadata, c.Metadata);
                SetParams(insert, ("$s", sourceId), ("$o", i), ("$t", c.Text), ("$h", c.Heading), ("$l1", c.LineStart), ("$l2", c.LineEnd),
                    ("$p", c.Page), ("$n", c.TokenCount), ("$m", SerializeMetadata(merged)), ("$v", MemoryMarshal.AsBytes(vectors[i].AsSpan()).ToArray()));
                ids[i] = (long)insert.ExecuteScalar()!;
                SetParams(fts, ("$id", ids[i]), ("$ti", title), ("$h", c.Heading), ("$t", c.Text));
                fts.ExecuteNonQuery();
            }
        }
        BumpGeneration(tx);
        tx.Commit();
        return (sourceId, ids, removed);
    }

    /// <summary>Removes sources by id; returns the chunk ids that went with them.</summary>
    public long[] RemoveSources(IReadOnlyCollection<long> sourceIds)
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
        BumpGeneration(tx);
        tx.Commit();
        return removed.ToArray();
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

    public int CountChunks() => Convert.ToInt32(Scalar("SELECT count(*) FROM chunks"), CultureInfo.InvariantCulture);
    public int CountSources() => Convert.ToInt32(Scalar("SELECT count(*) FROM sources"), CultureInfo.InvariantCulture);

    public HashSet<long> GetChunkIds()
    {
        var set = new HashSet<long>();
        using var cmd = Command("SELECT id FROM chunks");
        using var r = cmd.ExecuteReader();
        while (r.Read()) set.Add(r.GetInt64(0));
        return set;
    }

    /// <summary>Streams (id, vector) pairs, optionally only for the given ids.</summary>
    public IEnumerable<(long Id, float[] Vector)> ReadVectors(IReadOnlyCollection<long>? ids = null)
    {
        if (ids is { Count: 0 }) yield break;
        using var cmd = Command(ids is null ? "SELECT id, vector FROM chunks ORDER BY id" : "SELECT id, vector FROM chunks WHERE id IN (SELECT value FROM json_each($ids)) ORDER BY id",
            ("$ids", ids is null ? null : JsonSerializer.Serialize(ids)));
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            var bytes = (byte[])r.GetValue(1);
            yield return (r.GetInt64(0), MemoryMarshal.Cast<byte, float>(bytes).ToArray());
        }
    }

    /// <summary>BM25 over the FTS5 table; returns (chunk id, score) best first, score = -bm25 (higher is better).
    /// <paramref name="weights"/> weigh a match in the document title, the heading path and the body.</summary>
    public List<(long Id, double Score)> KeywordSearch(string query, int limit, KeywordWeights weights)
    {
        var match = ToMatchExpression(query);
        var results = new List<(long, double)>();
        if (match is null) return results;
        using var cmd = Command("SELECT rowid, bm25(chunks_fts, $wt, $wh, $wb) AS score FROM chunks_fts WHERE chunks_fts MATCH $q ORDER BY score LIMIT $n",
            ("$q", match), ("$n", limit), ("$wt", weights.Title), ("$wh", weights.Headings), ("$wb", weights.Body));
        using var r = cmd.ExecuteReader();
        while (r.Read()) results.Add((r.GetInt64(0), -r.GetDouble(1)));
        return results;
    }

    /// <summary>BM25 scores (as <see cref="KeywordSearch"/>) of the given chunks only; chunks without a query word are left out.</summary>
    public List<(long Id, double Score)> KeywordScores(string query, IReadOnlyCollection<long> ids, KeywordWeights weights)
    {
        var match = ToMatchExpression(query);
        var results = new List<(long, double)>();
        if (match is null || ids.Count == 0) return results;
        using var cmd = Command("SELECT rowid, bm25(chunks_fts, $wt, $wh, $wb) FROM chunks_fts WHERE chunks_fts MATCH $q AND rowid IN (SELECT value FROM json_each($ids))",
            ("$q", match), ("$ids", JsonSerializer.Serialize(ids)), ("$wt", weights.Title), ("$wh", weights.Headings), ("$wb", weights.Body));
        using var r = cmd.ExecuteReader();
        while (r.Read()) results.Add((r.GetInt64(0), -r.GetDouble(1)));
        return results;
    }

    /// <summary>The source id of each of the given chunks that still exists.</summary>
    public Dictionary<long, long> SourceIdsOf(IReadOnlyCollection<long> ids)
    {
        var result = new Dictionary<long, long>();
        if (ids.Count == 0) return result;
        using var cmd = Command("SELECT id, source_id FROM chunks WHERE id IN (SELECT value FROM json_each($ids))", ("$ids", JsonSerializer.Serialize(ids)));
        using var r = cmd.ExecuteReader();
        while (r.Read()) result[r.GetInt64(0)] = r.GetInt64(1);
        return result;
    }

    /// <summary>Turns free text into an FTS5 expression: each word quoted (so punctuation cannot break the syntax), OR-ed.</summary>
    internal static string? ToMatchExpression(string query)
    {
        var words = new List<string>();
        var sb = new StringBuilder();
        foreach (var ch in query + " ")
        {
            if (char.IsLetterOrDigit(ch) || ch == '_') sb.Append(ch);
            else if (sb.Length > 0) { words.Add(sb.ToString()); sb.Clear(); }
        }
        var distinct = words.Select(w => w.ToLowerInvariant()).Where(w => !StopWords.Contains(w)).Distinct().ToList();
        if (distinct.Count == 0) distinct = words.Select(w => w.ToLowerInvariant()).Distinct().ToList();
        return distinct.Count == 0 ? null : string.Join(" OR ", distinct.Select(w => "\"" + w + "\""));
    }

    private static readonly HashSet<string> StopWords = new(StringComparer.Ordinal)
    {
        "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how", "i", "in", "is", "it",
        "its", "me", "my", "of", "on", "or", "that", "the", "this", "to", "what", "when", "where", "which", "who", "why",
        "with", "you", "your", "should", "would", "will", "use", "using", "into", "there", "their", "than", "then", "so",
    };

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
                r.IsDBNull(4) ? null : r.GetString(4), r.IsDBNull(5) ? null : r.GetInt32(5), r.IsDBNull(6) ? null : r.GetInt32(6),
                r.IsDBNull(7) ? null : r.GetInt32(7), ParseMetadata(r.IsDBNull(8) ? null : r.GetString(8)), r.IsDBNull(9) ? null : r.GetString(9));
            result[chunk.Id] = chunk;
        }
        return result;
    }

    /// <summary>Ids of chunks whose metadata matches every pair (case-insensitive), for filtered exact search.</summary>
    public HashSet<long> FilterChunkIds(IReadOnlyDictionary<string, string> filter)
    {
        var sql = new StringBuilder("SELECT id FROM chunks WHERE 1=1");
        var ps = new List<(string, object?)>();
        int i = 0;
        foreach (var (k, v) in filter)
        {
            sql.Append(System.Globalization.CultureInfo.InvariantCulture, $" AND EXISTS (SELECT 1 FROM json_each(chunks.metadata) j WHERE lower(j.key) = lower($k{i}) AND lower(j.value) = lower($v{i}))");
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

    internal static string? SerializeMetadata(IReadOnlyDictionary<string, string>? metadata) =>
        metadata is null || metadata.Count == 0 ? null : JsonSerializer.Serialize(metadata);

    internal static IReadOnlyDictionary<string, string> ParseMetadata(string? json) =>
        json is null ? new Dictionary<string, string>() :
        new Dictionary<string, string>(JsonSerializer.Deserialize<Dictionary<string, string>>(json) ?? [], StringComparer.OrdinalIgnoreCase);

    private static IReadOnlyDictionary<string, string>? Merge(IReadOnlyDictionary<string, string>? a, IReadOnlyDictionary<string, string>? b)
    {
        if (a is null || a.Count == 0) return b;
        if (b is null || b.Count == 0) return a;
        var merged = new Dictionary<string, string>(a, StringComparer.OrdinalIgnoreCase);
        foreach (var (k, v) in b) merged[k] = v;
        return merged;
    }

    private SqliteCommand Command(string sql, params (string Name, object? Value)[] parameters)
    {
        var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (name, value) in parameters) cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return cmd;
    }

    private static void SetParams(SqliteCommand cmd, params (string Name, object? Value)[] parameters)
    {
        cmd.Parameters.Clear();
        foreach (var (name, value) in parameters) cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
    }

    private void Exec(string sql, SqliteTransaction? tx = null)
    {
        using var cmd = Command(sql);
        cmd.Transaction = tx;
        cmd.ExecuteNonQuery();
    }

    private object? Scalar(string sql)
    {
        using var cmd = Command(sql);
        return cmd.ExecuteScalar();
    }

    public void Dispose()
    {
        _db.Dispose();
    }
}
