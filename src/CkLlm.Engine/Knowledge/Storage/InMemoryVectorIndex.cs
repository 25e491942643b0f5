namespace CkLlm.Engine.Knowledge.Storage;

/// <summary>
/// An exact, in-memory <see cref="IVectorIndex"/>: every search scans all vectors (always the true nearest neighbours),
/// nothing is saved, and the knowledge base rebuilds it from the database on every open. For tiny or short-lived
/// knowledge bases and as the second implementation that keeps the seam honest.
/// </summary>
public sealed class InMemoryVectorIndex : IVectorIndex
{
    private readonly object _gate = new();
    private ExactVectorScan _scan;

    public InMemoryVectorIndex(int dimensions)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dimensions);
        Dimensions = dimensions;
        _scan = new ExactVectorScan(dimensions);
    }

    /// <summary>For <see cref="KnowledgeBaseOptions.VectorIndexFactory"/>.</summary>
    public static IVectorIndex Create(int dimensions, KnowledgeBaseOptions options) => new InMemoryVectorIndex(dimensions);

    public int Dimensions { get; }

    public int Count { get { lock (_gate) return _scan.Count; } }

    public long Generation { get; set; } = -1;

    public IReadOnlyCollection<long> Keys { get { lock (_gate) return _scan.Keys.ToArray(); } }

    public bool IsPersistent => false;

    public void Add(IReadOnlyList<long> ids, IReadOnlyList<float[]> vectors)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(vectors);
        if (ids.Count != vectors.Count) throw new ArgumentException("ids and vectors differ in length.");
        foreach (var vector in vectors) CheckLength(vector);
        lock (_gate)
            for (var i = 0; i < ids.Count; i++) _scan.Add(ids[i], vectors[i]);
    }

    public void Remove(IEnumerable<long> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        lock (_gate)
            foreach (var id in ids) _scan.Remove(id);
    }

    public IReadOnlyList<(long Id, float Similarity)> Search(float[] query, int count)
    {
        CheckLength(query);
        lock (_gate) return _scan.Count == 0 || count <= 0 ? [] : _scan.Search(query, Math.Min(count, _scan.Count));
    }

    public void Rebuild(IEnumerable<(long Id, float[] Vector)> vectors, long generation)
    {
        ArgumentNullException.ThrowIfNull(vectors);
        var scan = new ExactVectorScan(Dimensions);
        foreach (var (id, vector) in vectors)
        {
            CheckLength(vector);
            scan.Add(id, vector);
        }
        lock (_gate)
        {
            _scan = scan;
            Generation = generation;
        }
    }

    public void Save(string path) { }

    public string? TryLoad(string path, long expectedGeneration, HashSet<long> expectedKeys) =>
        "the in-memory index is not saved; built from the database";

    private void CheckLength(float[] vector)
    {
        if (vector is null || vector.Length != Dimensions)
            throw new ArgumentException($"Vector has {vector?.Length ?? 0} dimensions; the index holds {Dimensions}.");
    }

    public void Dispose() { }
}
