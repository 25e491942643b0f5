using System.Net.Sockets;
using Npgsql;

namespace CkLlm.Engine.Knowledge.Storage.Postgres;

/// <summary>
/// The server store: one PostgreSQL database holds any number of knowledge bases (rows of <c>ckllm_knowledge_bases</c>,
/// by name) with their sources, chunks (jsonb metadata, float32 vectors as bytea, a weighted tsvector with a GIN index)
/// and a change log (<c>ckllm_changes</c>: chunk ids added and removed per generation). Every write is one transaction
/// that first bumps the knowledge base's generation, which locks its row: writers of one knowledge base commit one
/// after the other (the slow part, embedding, happens before), so generations are gap-free and in commit order, and a
/// writer killed at any point leaves nothing (the server rolls its transaction back). Readers keep a USearch cache in
/// <see cref="CacheDirectory"/> and catch it up from the change log. This part: connection, schema, meta, errors.
/// </summary>
internal sealed partial class PostgresKnowledgeStore : IKnowledgeStore
{
    /// <summary>Tables of this version are created on first write; a database with a newer version is refused. Version 2
    /// splits the keyword index's words at punctuation (a writer upgrades version 1: <see cref="PostgresSchema.UpgradeFrom1"/>).</summary>
    public const int SchemaVersion = 2;
    private readonly PostgresLocation _location;
    private readonly NpgsqlConnection _db;
    private readonly int _kb;

    private PostgresKnowledgeStore(PostgresLocation location, NpgsqlConnection db, int kb, Guid uid)
    {
        _location = location;
        _db = db;
        _kb = kb;
        CacheDirectory = Path.Combine(CacheRoot, "knowledge", CacheFolderName(location, uid));
    }

    public string Location => _location.Display;

    /// <summary>Where this machine keeps its vector cache of the knowledge base: the user's cache folder
    /// ($CKLLM_CACHE, else $XDG_CACHE_HOME/ckllm, else ~/.cache/ckllm), one folder per server, database, name and
    /// incarnation (a knowledge base dropped and created again never reuses an old cache).</summary>
    public string CacheDirectory { get; }

    private static string CacheRoot =>
        Environment.GetEnvironmentVariable("CKLLM_CACHE") is { Length: > 0 } own ? own
        : Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? Path.Combine(xdg, "ckllm")
        : OperatingSystem.IsWindows() ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "ckllm", "cache")
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "ckllm");

    private static string CacheFolderName(PostgresLocation l, Guid uid)
    {
        var readable = string.Concat($"{l.Host}-{l.Port}-{l.Database}-{l.KnowledgeBase}".Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_'));
        return $"{readable[..Math.Min(readable.Length, 80)]}-{uid.ToString("N")[..12]}";
    }

    /// <summary>Connects and finds the knowledge base; with <paramref name="create"/> makes the tables and the knowledge
    /// base when missing, otherwise a missing one is <see cref="KnowledgeBaseNotFoundException"/> and nothing is written.</summary>
    public static PostgresKnowledgeStore Open(PostgresLocation location, bool create)
    {
        var db = new NpgsqlConnection(location.ConnectionString);
        try
        {
            db.Open();
            if (create) EnsureSchema(db);
            else CheckSchema(db, location);
            var (kb, uid) = FindKnowledgeBase(db, location.KnowledgeBase) ??
                (create ? CreateKnowledgeBase(db, location.KnowledgeBase) : throw NotFound(location));
            return new PostgresKnowledgeStore(location, db, kb, uid) { HasPgvector = DetectPgvector(db) };
        }
        catch (Exception ex)
        {
            db.Dispose();
            if (TranslateFor(location, ex) is { } translated) throw translated;
            throw;
        }
    }

    private static KnowledgeBaseNotFoundException NotFound(PostgresLocation l) =>
        new(l.Display, $"There is no knowledge base '{l.KnowledgeBase}' in the database '{l.Database}' on {l.Endpoint}. " +
            "Check the name, or create it with Add-CkKnowledge -KnowledgeBase '" + l.Display + "'.");

    private static void CheckSchema(NpgsqlConnection db, PostgresLocation location)
    {
        using var cmd = new NpgsqlCommand("SELECT to_regclass('ckllm_schema') IS NOT NULL", db);
        if (!(bool)cmd.ExecuteScalar()!) throw NotFound(location);
        CheckVersion(db);
    }

    private static void CheckVersion(NpgsqlConnection db)
    {
        using var cmd = new NpgsqlCommand("SELECT max(version) FROM ckllm_schema", db);
        var version = cmd.ExecuteScalar() is int v ? v : 0;
        if (version > SchemaVersion)
            throw new KnowledgeBaseException($"The database holds CkLlm knowledge schema version {version}; this CkLlm reads version {SchemaVersion}. Update CkLlm.");
    }

    private static void EnsureSchema(NpgsqlConnection db)
    {
        using (var ver = new NpgsqlCommand("SHOW server_version_num", db))
        {
            if (int.Parse((string)ver.ExecuteScalar()!, System.Globalization.CultureInfo.InvariantCulture) < 130000)
                throw new KnowledgeBaseException("CkLlm needs PostgreSQL 13 or later for knowledge bases (gen_random_uuid, websearch-era text search).");
        }
        using var tx = db.BeginTransaction();
        // Two first writers at once: CREATE ... IF NOT EXISTS is not safe against itself, so take a lock for it.
        Exec(db, tx, "SELECT pg_advisory_xact_lock(7431001)");
        Exec(db, tx, PostgresSchema.Create);
        using (var ver = new NpgsqlCommand("SELECT max(version) FROM ckllm_schema", db, tx))
            if (ver.ExecuteScalar() is 1) Exec(db, tx, PostgresSchema.UpgradeFrom1);
        Exec(db, tx, $"INSERT INTO ckllm_schema(version) VALUES ({SchemaVersion}) ON CONFLICT DO NOTHING");
        // UNTESTED path: with pgvector installed, chunks also carry their vector as pgvector's type (PgvectorIndex).
        Exec(db, tx, "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') THEN " +
            "ALTER TABLE ckllm_chunks ADD COLUMN IF NOT EXISTS embedding vector; END IF; END $$");
        tx.Commit();
        CheckVersion(db);
    }

    /// <summary>True when the database has the pgvector extension and the chunks carry its column: vector search then
    /// runs in the server (<see cref="PgvectorIndex"/>, untested) instead of a local cache.</summary>
    public bool HasPgvector { get; private init; }

    private static bool DetectPgvector(NpgsqlConnection db)
    {
        using var cmd = new NpgsqlCommand("""
            SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector')
               AND EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'ckllm_chunks' AND column_name = 'embedding')
            """, db);
        return (bool)cmd.ExecuteScalar()!;
    }

    /// <summary>The index that searches this store's pgvector column (only when <see cref="HasPgvector"/>).</summary>
    public IVectorIndex CreatePgvectorIndex(int dimensions) => new PgvectorIndex(_location.ConnectionString, _kb, dimensions);

    private static (int Id, Guid Uid)? FindKnowledgeBase(NpgsqlConnection db, string name)
    {
        using var cmd = new NpgsqlCommand("SELECT id, uid FROM ckllm_knowledge_bases WHERE name = $1", db) { Parameters = { new() { Value = name } } };
        using var r = cmd.ExecuteReader();
        return r.Read() ? (r.GetInt32(0), r.GetGuid(1)) : null;
    }

    private static (int Id, Guid Uid) CreateKnowledgeBase(NpgsqlConnection db, string name)
    {
        // Two first writers at once: one inserts, the other's insert does nothing and both then find the same row.
        using (var cmd = new NpgsqlCommand("INSERT INTO ckllm_knowledge_bases(name) VALUES ($1) ON CONFLICT (name) DO NOTHING", db) { Parameters = { new() { Value = name } } })
            cmd.ExecuteNonQuery();
        return FindKnowledgeBase(db, name) ?? throw new KnowledgeBaseException($"The knowledge base '{name}' was dropped while it was being created.");
    }

    public long SizeBytes => Convert.ToInt64(Scalar("SELECT coalesce(sum(pg_total_relation_size(t)), 0) FROM unnest(ARRAY['ckllm_chunks','ckllm_sources','ckllm_changes']::regclass[]) t"), System.Globalization.CultureInfo.InvariantCulture);

    public long Generation =>
        Scalar("SELECT generation FROM ckllm_knowledge_bases WHERE id = $1", _kb) is long g ? KeepRowsOf(g)
        : throw NotFound(_location); // dropped by someone else while open

    public string? GetMeta(string key) => Scalar("SELECT value FROM ckllm_meta WHERE kb_id = $1 AND key = $2", _kb, key) as string;

    public void SetMeta(string key, string value) =>
        Scalar("INSERT INTO ckllm_meta(kb_id, key, value) VALUES ($1, $2, $3) ON CONFLICT (kb_id, key) DO UPDATE SET value = excluded.value", _kb, key, value);

    public KnowledgeBaseException? Translate(Exception exception) => TranslateFor(_location, exception);

    /// <summary>Server errors as the engine's: unreachable (host:port), authentication, missing database, lost connection.</summary>
    private static KnowledgeBaseException? TranslateFor(PostgresLocation l, Exception exception)
    {
        switch (exception)
        {
            case KnowledgeBaseException:
                return null;
            case PostgresException { SqlState: "28P01" or "28000" } pg:
                return new KnowledgeServerAuthenticationException($"The PostgreSQL server at {l.Endpoint} refused user '{l.User}': {pg.MessageText}. " +
                    "Give the password in the URI, with -Credential, in PGPASSWORD or in ~/.pgpass.", pg);
            case PostgresException { SqlState: "3D000" } pg:
                return new KnowledgeBaseNotFoundException(l.Display, $"The database '{l.Database}' does not exist on {l.Endpoint} ({pg.MessageText}). Create it first (createdb {l.Database}).");
            case PostgresException { SqlState: "57P01" or "57P02" or "57P03" } pg: // admin shutdown, crash shutdown, cannot connect now
                return new KnowledgeServerUnreachableException($"The PostgreSQL server at {l.Endpoint} is shutting down or starting ({pg.MessageText}); nothing was half-written. Retry when it is up.", l.Endpoint, pg);
            case PostgresException:
                return null;
            case NpgsqlException { InnerException: SocketException or IOException or TimeoutException } or NpgsqlException { IsTransient: true } or SocketException:
                return new KnowledgeServerUnreachableException($"Cannot reach the PostgreSQL server at {l.Endpoint}: {exception.InnerException?.Message ?? exception.Message}. " +
                    "A write in progress was rolled back by the server; check that it runs and accepts connections.", l.Endpoint, exception);
            case NpgsqlException npg when npg.Message.Contains("password", StringComparison.OrdinalIgnoreCase):
                return new KnowledgeServerAuthenticationException($"The PostgreSQL server at {l.Endpoint} needs a password for user '{l.User}' ({npg.Message}). " +
                    "Give it in the URI, with -Credential, in PGPASSWORD or in ~/.pgpass.", npg);
            case NpgsqlException npg:
                return new KnowledgeBaseException($"The knowledge base {l.Display} failed: {npg.Message}", npg);
            default:
                return null;
        }
    }

    /// <summary>The connection, reopened if the server dropped it (a restart between two commands is not an error).</summary>
    private NpgsqlConnection Db
    {
        get
        {
            if (_db.FullState.HasFlag(System.Data.ConnectionState.Broken) || _db.State == System.Data.ConnectionState.Closed)
            {
                _db.Close();
                _db.Open();
            }
            return _db;
        }
    }

    private NpgsqlCommand Command(string sql, params object?[] parameters)
    {
        var cmd = new NpgsqlCommand(sql, Db);
        foreach (var p in parameters) cmd.Parameters.Add(new NpgsqlParameter { Value = p ?? DBNull.Value });
        return cmd;
    }

    private object? Scalar(string sql, params object?[] parameters)
    {
        using var cmd = Command(sql, parameters);
        var value = cmd.ExecuteScalar();
        return value is DBNull ? null : value;
    }

    private static void Exec(NpgsqlConnection db, NpgsqlTransaction tx, string sql)
    {
        using var cmd = new NpgsqlCommand(sql, db, tx);
        cmd.ExecuteNonQuery();
    }

    /// <summary>The server process serving this store's connection (tests end it to play a killed writer).</summary>
    internal int BackendProcessId => Db.ProcessID;

    public void Dispose() => _db.Dispose();
}
