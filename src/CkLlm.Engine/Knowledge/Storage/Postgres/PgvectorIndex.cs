using System.Globalization;
using Npgsql;

namespace CkLlm.Engine.Knowledge.Storage.Postgres;

/// <summary>
/// UNTESTED (pgvector cannot be installed on the machines this was written on): nearest-neighbour search pushed into
/// PostgreSQL when the <c>vector</c> extension is installed in the database, written against pgvector's documented SQL
/// (<c>vector</c> type, <c>&lt;=&gt;</c> cosine distance, <c>hnsw ... vector_cosine_ops</c>). The vectors live in
/// <c>ckllm_chunks.embedding</c>, written by <see cref="PostgresKnowledgeStore"/> next to the bytea copy, so this index
/// holds nothing itself: no local cache, nothing to catch up. Chosen by <see cref="PostgresKnowledgeStore.HasPgvector"/>
/// when the caller kept the default <see cref="KnowledgeBaseOptions.VectorIndexFactory"/>.
/// </summary>
internal sealed class PgvectorIndex(string connectionString, int knowledgeBaseId, int dimensions) : IVectorIndex
{
    private readonly object _gate = new();
    private NpgsqlConnection? _db;

    public int Dimensions => dimensions;

    public int Count => Convert.ToInt32(Scalar("SELECT count(*) FROM ckllm_chunks WHERE kb_id = $1 AND embedding IS NOT NULL", knowledgeBaseId), CultureInfo.InvariantCulture);

    public long Generation { get; set; } = -1;

    public IReadOnlyCollection<long> Keys => [];

    public bool IsPersistent => false;

    public bool HoldsVectors => false;

    /// <summary>The store wrote the vectors in the same transaction as the chunks.</summary>
    public void Add(IReadOnlyList<long> ids, IReadOnlyList<float[]> vectors) { }

    public void Remove(IEnumerable<long> ids) { }

    public void Rebuild(IEnumerable<(long Id, float[] Vector)> vectors, long generation) => Generation = generation;

    public void Save(string path) { }

    public string? TryLoad(string path, long expectedGeneration, HashSet<long> expectedKeys) =>
        "vectors are searched in PostgreSQL (pgvector); no local cache";

    public IReadOnlyList<(long Id, float Similarity)> Search(float[] query, int count)
    {
        if (query.Length != dimensions) throw new ArgumentException($"Vector has {query.Length} dimensions; the index holds {dimensions}.");
        // The cast to vector(n) matches the expression index PostgresKnowledgeStore creates for this dimension.
        var sql = $"SELECT id, 1 - (embedding::vector({dimensions}) <=> $1::vector({dimensions})) FROM ckllm_chunks " +
                  $"WHERE kb_id = $2 AND embedding IS NOT NULL ORDER BY embedding::vector({dimensions}) <=> $1::vector({dimensions}) LIMIT $3";
        lock (_gate)
        {
            using var cmd = new NpgsqlCommand(sql, Connection());
            cmd.Parameters.Add(new NpgsqlParameter { Value = ToLiteral(query) });
            cmd.Parameters.Add(new NpgsqlParameter { Value = knowledgeBaseId });
            cmd.Parameters.Add(new NpgsqlParameter { Value = count });
            using var r = cmd.ExecuteReader();
            var hits = new List<(long, float)>();
            while (r.Read()) hits.Add((r.GetInt64(0), (float)r.GetDouble(1)));
            return hits;
        }
    }

    /// <summary>pgvector's text form, '[0.1,0.2,...]'.</summary>
    public static string ToLiteral(float[] vector) => "[" + string.Join(',', vector.Select(v => v.ToString("R", CultureInfo.InvariantCulture))) + "]";

    private NpgsqlConnection Connection()
    {
        if (_db is null || _db.State != System.Data.ConnectionState.Open)
        {
            _db?.Dispose();
            _db = new NpgsqlConnection(connectionString);
            _db.Open();
        }
        return _db;
    }

    private object? Scalar(string sql, params object[] parameters)
    {
        lock (_gate)
        {
            using var cmd = new NpgsqlCommand(sql, Connection());
            foreach (var p in parameters) cmd.Parameters.Add(new NpgsqlParameter { Value = p });
            return cmd.ExecuteScalar();
        }
    }

    public void Dispose()
    {
        lock (_gate) _db?.Dispose();
    }
}
