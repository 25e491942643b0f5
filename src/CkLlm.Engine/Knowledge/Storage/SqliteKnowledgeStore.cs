using System.Globalization;
using CkLlm.Engine.Knowledge.Ingestion;
using Microsoft.Data.Sqlite;

namespace CkLlm.Engine.Knowledge.Storage;

/// <summary>
/// The folder store: a SQLite database that holds everything the user added: sources (with content hash), chunks (text,
/// line range, page, heading path, metadata JSON, vector blob) and an FTS5 table for BM25. The HNSW index is only a
/// cache of it. Every write bumps <c>generation</c> in the same transaction so index files can tell whether they are
/// current. This part: opening, schema and migration, meta values; sources and chunks are in the other parts.
/// </summary>
internal sealed partial class SqliteKnowledgeStore : IKnowledgeStore
{
    public const int SchemaVersion = 2;

    /// <summary>Version 1 had one FTS5 blob (text, heading) and no document titles; it is migrated on open.</summary>
    private const int FirstSchemaVersion = 1;
    private readonly SqliteConnection _db;
    private readonly string _path;

    /// <param name="readOnly">Open an existing database for reading only: no schema changes, no writes, so it is safe
    /// next to a writer in another process (WAL readers never block or get blocked).</param>
    public SqliteKnowledgeStore(string path, bool readOnly = false)
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

    public string Location => _path;

    public long SizeBytes => File.Exists(_path) ? new FileInfo(_path).Length : 0;

    public static bool IsCorruption(SqliteException ex) => ex.SqliteErrorCode is 11 or 26; // SQLITE_CORRUPT, SQLITE_NOTADB

    public static KnowledgeBaseCorruptException Corrupt(string path, Exception ex) =>
        new($"The knowledge base database '{path}' is damaged or not a CkLlm knowledge base ({ex.Message}). " +
            "Restore it from a backup or delete the directory and add the sources again.", ex);

    public KnowledgeBaseException? Translate(Exception exception) =>
        exception is SqliteException ex && IsCorruption(ex) ? Corrupt(_path, ex) : null;

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

    public string? GetMeta(string key)
    {
        using var cmd = Command("SELECT value FROM meta WHERE key = $k", ("$k", key));
        return cmd.ExecuteScalar() as string;
    }

    public void SetMeta(string key, string value) => SetMeta(key, value, null);

    private void SetMeta(string key, string value, SqliteTransaction? tx)
    {
        using var cmd = Command("INSERT INTO meta(key, value) VALUES($k, $v) ON CONFLICT(key) DO UPDATE SET value = excluded.value", ("$k", key), ("$v", value));
        cmd.Transaction = tx;
        cmd.ExecuteNonQuery();
    }

    public long Generation => long.TryParse(GetMeta("generation"), out var g) ? g : 0;

    /// <summary>Folders keep no change log: a cache behind compares chunk ids (cheap for one machine's database).</summary>
    public StoreChanges? ChangesSince(long generation) => null;

    private long BumpGeneration(SqliteTransaction tx)
    {
        using var cmd = Command("INSERT INTO meta(key, value) VALUES('generation', '1') ON CONFLICT(key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) RETURNING value");
        cmd.Transaction = tx;
        return long.Parse((string)cmd.ExecuteScalar()!, CultureInfo.InvariantCulture);
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
