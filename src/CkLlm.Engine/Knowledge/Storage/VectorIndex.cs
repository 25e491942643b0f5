using System.Reflection;
using System.Runtime.InteropServices;
using Cloud.Unum.USearch;

namespace CkLlm.Engine.Knowledge.Storage;

/// <summary>
/// The default <see cref="IVectorIndex"/>: the HNSW index (USearch, cosine) over chunk vectors, keyed by chunk id. Guards the wrapper's hazards: vectors of
/// the wrong length are refused (USearch reads past the array), the index is never opened as a view (Add on a view
/// kills the process), vectors are added in batches, ef_search is set after every load (it is not saved), and all
/// calls are serialised (the wrapper has no locks). Saved files get a checksum sidecar because USearch has none.
/// Up to <c>exactSearchLimit</c> vectors a search scans a flat copy of the normalised vectors instead of the graph:
/// at that size the scan is about as fast and always exact (docs/benchmarks.md); the graph is still kept so the index
/// can grow past the limit and be saved unchanged.
/// </summary>
internal sealed class VectorIndex : IVectorIndex
{
    private readonly object _gate = new();
    private readonly int _dimensions;
    private readonly int _connectivity;
    private readonly int _expansionAdd;
    private readonly int _expansionSearch;
    private USearchIndex _index;
    private readonly HashSet<long> _keys = new();
    private readonly int _exactSearchLimit;
    // Null while the index is above the limit, or after a load until the first search needs it.
    private ExactVectorScan? _exact;

    public VectorIndex(int dimensions, int connectivity, int expansionAdd, int expansionSearch, int exactSearchLimit = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dimensions);
        if (exactSearchLimit < 0) throw new ArgumentOutOfRangeException(nameof(exactSearchLimit), "must be 0 (never) or more.");
        _dimensions = dimensions;
        _connectivity = connectivity;
        _expansionAdd = expansionAdd;
        _expansionSearch = expansionSearch;
        _exactSearchLimit = exactSearchLimit;
        _index = NewIndex();
        _exact = exactSearchLimit > 0 ? new ExactVectorScan(dimensions) : null;
    }

    /// <summary>True when searches currently scan all vectors exactly instead of walking the HNSW graph.</summary>
    public bool UsesExactSearch { get { lock (_gate) return _keys.Count <= _exactSearchLimit; } }

    public int Dimensions => _dimensions;
    public int Count { get { lock (_gate) return _keys.Count; } }

    /// <summary>The database generation the index reflects.</summary>
    public long Generation { get; set; } = -1;

    public IReadOnlyCollection<long> Keys { get { lock (_gate) return _keys.ToArray(); } }

    private USearchIndex NewIndex() =>
        new(MetricKind.Cos, ScalarKind.Float32, (ulong)_dimensions, (ulong)_connectivity, (ulong)_expansionAdd, (ulong)_expansionSearch, false);

    public void Add(IReadOnlyList<long> ids, IReadOnlyList<float[]> vectors)
    {
        if (ids.Count != vectors.Count) throw new ArgumentException("ids and vectors differ in length.");
        for (int i = 0; i < vectors.Count; i++) CheckLength(vectors[i]);
        lock (_gate)
        {
            var keys = new List<ulong>(ids.Count);
            var vecs = new List<float[]>(ids.Count);
            for (int i = 0; i < ids.Count; i++)
            {
                if (_keys.Contains(ids[i])) continue;
                keys.Add((ulong)ids[i]);
                vecs.Add(vectors[i]);
            }
            if (keys.Count == 0) return;
            Reserve(_keys.Count + keys.Count);
            AddParallel(keys, vecs);
            foreach (var k in keys) _keys.Add((long)k);
            TrackExact(keys, vecs);
        }
    }

    private void TrackExact(List<ulong> keys, List<float[]> vecs)
    {
        if (_exact is null) return;
        if (_keys.Count > _exactSearchLimit) { _exact = null; return; }
        for (int i = 0; i < keys.Count; i++) _exact.Add((long)keys[i], vecs[i]);
    }

    // HNSW inserts into a USearch index are thread-safe in the native library once capacity (and threads) are
    // reserved; our own gate keeps everything else out meanwhile.
    private void AddParallel(List<ulong> keys, List<float[]> vecs)
    {
        if (keys.Count < 256)
        {
            _index.Add(keys.ToArray(), vecs.ToArray());
            return;
        }
        Parallel.For(0, keys.Count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount },
            i => _index.Add(keys[i], vecs[i]));
    }

    private void Reserve(int capacity)
    {
        if ((ulong)capacity <= _index.Capacity()) return;
        var handle = Handle(_index);
        var target = Math.Max((ulong)capacity, _index.Capacity() * 2);
        usearch_reserve(handle, checked((UIntPtr)target), out var error);
        ThrowIf(error);
    }

    /// <summary>Changes ef_search of the live index (benchmarks sweep it).</summary>
    internal void SetExpansionSearch(int expansion)
    {
        lock (_gate)
        {
            usearch_change_expansion_search(Handle(_index), (UIntPtr)expansion, out var error);
            ThrowIf(error);
        }
    }

    public void Remove(IEnumerable<long> ids)
    {
        lock (_gate)
        {
            foreach (var id in ids)
            {
                if (!_keys.Remove(id)) continue;
                _index.Remove((ulong)id);
                _exact?.Remove(id);
            }
        }
    }

    public IReadOnlyList<(long Id, float Similarity)> Search(float[] query, int count)
    {
        CheckLength(query);
        lock (_gate)
        {
            var results = new List<(long, float)>();
            if (_keys.Count == 0 || count <= 0) return results;
            if (_keys.Count <= _exactSearchLimit) return ExactScan().Search(query, Math.Min(count, _keys.Count));
            int found = _index.Search(query, Math.Min(count, _keys.Count), out ulong[] keys, out float[] distances);
            for (int i = 0; i < found; i++) results.Add(((long)keys[i], 1f - distances[i]));
            return results;
        }
    }

    /// <summary>The exact scan regardless of size (benchmarks compare it with the graph).</summary>
    internal List<(long Id, float Similarity)> SearchExact(float[] query, int count)
    {
        CheckLength(query);
        lock (_gate) return _keys.Count == 0 || count <= 0 ? new() : ExactScan().Search(query, Math.Min(count, _keys.Count));
    }

    // After a load the vectors live only in USearch; copy them out once (cosine metric keeps them as given).
    private ExactVectorScan ExactScan()
    {
        if (_exact is not null) return _exact;
        var scan = new ExactVectorScan(_dimensions);
        foreach (var key in _keys)
        {
            if (_index.Get((ulong)key, out float[] vector) != 1)
                throw new InvalidOperationException($"Vector {key} is listed but missing from the HNSW index.");
            scan.Add(key, vector);
        }
        return _exact = scan;
    }

    private void CheckLength(float[] vector)
    {
        if (vector is null || vector.Length != _dimensions)
            throw new ArgumentException($"Vector has {vector?.Length ?? 0} dimensions; the index holds {_dimensions}.");
    }

    /// <summary>Replaces the content with the given vectors (used when the file is missing, stale or corrupt).</summary>
    public void Rebuild(IEnumerable<(long Id, float[] Vector)> vectors, long generation)
    {
        lock (_gate)
        {
            _index.Dispose();
            _index = NewIndex();
            _keys.Clear();
            _exact = _exactSearchLimit > 0 ? new ExactVectorScan(_dimensions) : null;
            var ids = new List<long>();
            var vecs = new List<float[]>();
            foreach (var (id, v) in vectors)
            {
                ids.Add(id);
                vecs.Add(v);
                if (ids.Count == 4096) { AddUnlocked(ids, vecs); ids.Clear(); vecs.Clear(); }
            }
            AddUnlocked(ids, vecs);
            Generation = generation;
        }
    }

    private void AddUnlocked(List<long> ids, List<float[]> vecs)
    {
        if (ids.Count == 0) return;
        foreach (var v in vecs) CheckLength(v);
        Reserve(_keys.Count + ids.Count);
        var keys = ids.Select(i => (ulong)i).ToList();
        AddParallel(keys, vecs);
        foreach (var id in ids) _keys.Add(id);
        TrackExact(keys, vecs);
    }

    public bool IsPersistent => true;

    /// <summary>Creates the default index of <see cref="KnowledgeBaseOptions.VectorIndexFactory"/>.</summary>
    public static IVectorIndex Create(int dimensions, KnowledgeBaseOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new VectorIndex(dimensions, options.Connectivity, options.ExpansionAdd, options.ExpansionSearch, options.ExactSearchLimit);
    }

    /// <summary>Writes the index to a temp file, checksums it, then renames index and sidecar into place.</summary>
    public void Save(string path)
    {
        lock (_gate)
        {
            var tmp = path + ".tmp";
            _index.Save(tmp);
            VectorIndexFile.Commit(tmp, path, _keys.Count, Generation, _dimensions);
        }
    }

    /// <summary>
    /// Loads the saved index if its checksum, dimensions and generation match; the caller then knows the keys are
    /// exactly <paramref name="expectedKeys"/>. Returns a reason string when the file cannot be trusted.
    /// </summary>
    public string? TryLoad(string path, long expectedGeneration, HashSet<long> expectedKeys)
    {
        if (VectorIndexFile.Check(path, _dimensions, expectedGeneration, expectedKeys.Count) is { } reason) return reason;

        lock (_gate)
        {
            USearchIndex loaded;
            try
            {
                // Load (a full copy), never view: Add on a viewed index crashes the process.
                loaded = new USearchIndex(path, false);
            }
            catch (USearchException ex) { return "USearch could not load the index: " + ex.Message; }
            if ((int)loaded.Size() != expectedKeys.Count || (int)loaded.Dimensions() != _dimensions)
            {
                loaded.Dispose();
                return "index content disagrees with its checksum file";
            }
            usearch_change_expansion_search(Handle(loaded), (UIntPtr)_expansionSearch, out var error);
            ThrowIf(error);
            _index.Dispose();
            _index = loaded;
            _exact = null;
            _keys.Clear();
            _keys.UnionWith(expectedKeys);
            Generation = expectedGeneration;
        }
        return null;
    }

    public static string SidecarPath(string indexPath) => VectorIndexFile.SidecarPath(indexPath);

    public void Dispose()
    {
        lock (_gate) _index.Dispose();
    }

    // The C# wrapper exposes neither reserve nor change_expansion_search; the C library does.
    private static readonly FieldInfo HandleField = typeof(USearchIndex).GetField("_index", BindingFlags.NonPublic | BindingFlags.Instance)
        ?? throw new MissingFieldException("USearchIndex._index not found: the USearch wrapper changed.");

    private static IntPtr Handle(USearchIndex index) => (IntPtr)HandleField.GetValue(index)!;

    private static void ThrowIf(IntPtr error)
    {
        if (error != IntPtr.Zero) throw new USearchException(Marshal.PtrToStringAnsi(error) ?? "USearch error");
    }

    [DllImport("libusearch_c", CallingConvention = CallingConvention.Cdecl)]
    private static extern void usearch_change_expansion_search(IntPtr index, UIntPtr expansion, out IntPtr error);

    [DllImport("libusearch_c", CallingConvention = CallingConvention.Cdecl)]
    private static extern void usearch_reserve(IntPtr index, UIntPtr capacity, out IntPtr error);
}
