namespace CkLlm.Engine.Knowledge.Storage;

/// <summary>
/// Nearest-neighbour search over chunk vectors, keyed by chunk id, for one knowledge base. The database is the truth:
/// the knowledge base brings the index up to it (<see cref="Generation"/>) before searching, so an index that cannot
/// persist is rebuilt from the database on open. Implementations: <see cref="VectorIndex"/> (USearch HNSW, saved next
/// to the database) and <see cref="InMemoryVectorIndex"/> (exact scan, not persistent). A server-backed store is one
/// more implementation, chosen with <see cref="KnowledgeBaseOptions.VectorIndexFactory"/>.
/// </summary>
/// <remarks>Implementations are thread-safe; vectors of another length than <see cref="Dimensions"/> are refused with
/// <see cref="ArgumentException"/>.</remarks>
public interface IVectorIndex : IDisposable
{
    int Dimensions { get; }

    int Count { get; }

    /// <summary>The database generation the index reflects (-1: none yet).</summary>
    long Generation { get; set; }

    IReadOnlyCollection<long> Keys { get; }

    /// <summary>Adds vectors; ids already present are left as they are.</summary>
    void Add(IReadOnlyList<long> ids, IReadOnlyList<float[]> vectors);

    /// <summary>Removes ids; unknown ids are ignored.</summary>
    void Remove(IEnumerable<long> ids);

    /// <summary>Up to <paramref name="count"/> nearest ids by cosine similarity, best first.</summary>
    IReadOnlyList<(long Id, float Similarity)> Search(float[] query, int count);

    /// <summary>Replaces the whole content (the saved copy was missing, stale or corrupt, or the index is not persistent).</summary>
    void Rebuild(IEnumerable<(long Id, float[] Vector)> vectors, long generation);

    /// <summary>False when <see cref="Save"/> keeps nothing and <see cref="TryLoad"/> always asks for a rebuild.</summary>
    bool IsPersistent { get; }

    /// <summary>False for an index that searches the store's own copy of the vectors (pgvector): the knowledge base
    /// then never reads vectors out of the store to feed it.</summary>
    bool HoldsVectors => true;

    /// <summary>Persists the index at <paramref name="path"/> (no-op when not persistent).</summary>
    void Save(string path);

    /// <summary>
    /// Loads a saved index if it matches <paramref name="expectedGeneration"/> and holds exactly
    /// <paramref name="expectedKeys"/>; otherwise returns why it cannot be used (the caller then rebuilds).
    /// </summary>
    string? TryLoad(string path, long expectedGeneration, HashSet<long> expectedKeys);
}
