using System.Numerics.Tensors;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using Cloud.Unum.USearch;

namespace CkLlm.Engine.Knowledge.Storage;

/// <summary>
/// The HNSW index (USearch, cosine) over chunk vectors, keyed by chunk id. Guards the wrapper's hazards: vectors of
/// the wrong length are refused (USearch reads past the array), the index is never opened as a view (Add on a view
/// kills the process), vectors are added in batches, ef_search is set after every load (it is not saved), and all
/// calls are serialised (the wrapper has no locks). Saved files get a checksum sidecar because USearch has none.
/// Up to <c>exactSearchLimit</c> vectors a search scans a flat copy of the normalised vectors instead of the graph:
/// at that size the scan is about as fast and always exact (docs/benchmarks.md); the graph is still kept so the index
/// can grow past the limit and be saved unchanged.
/// </summary>
internal sealed class VectorIndex : IDisposable
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
        if (dimensions <= 0) throw new ArgumentOutOfRangeException(nameof(dimensions));
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
        usearch_reserve(handle, (UIntPtr)target, out var error);
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

    public List<(long Id, float Similarity)> Search(float[] query, int count)
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

    /// <summary>Writes the index to a temp file, checksums it, then renames index and sidecar into place.</summary>
    public void Save(string path)
    {
        lock (_gate)
        {
            var tmp = path + ".tmp";
            var sidecarTmp = SidecarPath(path) + ".tmp";
            _index.Save(tmp);
            var sidecar = new IndexSidecar(Sha256(tmp), _keys.Count, Generation, _dimensions);
            File.WriteAllText(sidecarTmp, JsonSerializer.Serialize(sidecar));
            using (var f = new FileStream(tmp, FileMode.Open, FileAccess.Read)) f.Flush(flushToDisk: true);
            File.Move(tmp, path, overwrite: true);
            File.Move(sidecarTmp, SidecarPath(path), overwrite: true);
        }
    }

    /// <summary>
    /// Loads the saved index if its checksum, dimensions and generation match; the caller then knows the keys are
    /// exactly <paramref name="expectedKeys"/>. Returns a reason string when the file cannot be trusted.
    /// </summary>
    public string? TryLoad(string path, long expectedGeneration, HashSet<long> expectedKeys)
    {
        if (!File.Exists(path)) return "index file missing";
        IndexSidecar? sidecar;
        try { sidecar = JsonSerializer.Deserialize<IndexSidecar>(File.ReadAllText(SidecarPath(path))); }
        catch (Exception ex) when (ex is IOException or JsonException) { return "checksum file missing or unreadable"; }
        if (sidecar is null) return "checksum file empty";
        if (sidecar.Dimensions != _dimensions) return $"index has {sidecar.Dimensions} dimensions, expected {_dimensions}";
        if (sidecar.Generation != expectedGeneration) return $"index is from generation {sidecar.Generation}, database is at {expectedGeneration}";
        if (sidecar.Count != expectedKeys.Count) return $"index holds {sidecar.Count} vectors, database {expectedKeys.Count}";
        if (!string.Equals(Sha256(path), sidecar.Sha256, StringComparison.OrdinalIgnoreCase)) return "index checksum mismatch";

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

    /// <summary>
    /// Brute-force cosine search over a contiguous copy of the normalised vectors (one row per key; removal moves the
    /// last row into the hole).
    /// </summary>
    private sealed class ExactVectorScan(int dimensions)
    {
        private float[] _rows = new float[dimensions * 64];
        private readonly List<long> _ids = new();
        private readonly Dictionary<long, int> _rowOf = new();

        public void Add(long id, float[] vector)
        {
            if (_rowOf.ContainsKey(id)) return;
            int row = _ids.Count;
            if ((row + 1) * dimensions > _rows.Length) Array.Resize(ref _rows, _rows.Length * 2);
            var target = _rows.AsSpan(row * dimensions, dimensions);
            var norm = TensorPrimitives.Norm(vector);
            if (norm > 0) TensorPrimitives.Divide(vector, norm, target);
            else target.Clear();
            _ids.Add(id);
            _rowOf[id] = row;
        }

        public void Remove(long id)
        {
            if (!_rowOf.Remove(id, out int row)) return;
            int last = _ids.Count - 1;
            if (row != last)
            {
                _rows.AsSpan(last * dimensions, dimensions).CopyTo(_rows.AsSpan(row * dimensions, dimensions));
                _ids[row] = _ids[last];
                _rowOf[_ids[row]] = row;
            }
            _ids.RemoveAt(last);
        }

        public List<(long Id, float Similarity)> Search(float[] query, int count)
        {
            var norm = TensorPrimitives.Norm(query);
            var q = new float[dimensions];
            if (norm > 0) TensorPrimitives.Divide(query, norm, q);
            // Min-heap of the best `count` rows so far: the root is the weakest kept hit.
            var best = new PriorityQueue<int, float>(count + 1);
            for (int row = 0; row < _ids.Count; row++)
            {
                float score = TensorPrimitives.Dot(q, new ReadOnlySpan<float>(_rows, row * dimensions, dimensions));
                if (best.Count < count) best.Enqueue(row, score);
                else if (best.TryPeek(out _, out var weakest) && score > weakest) best.EnqueueDequeue(row, score);
            }
            var results = new List<(long Id, float Similarity)>(best.Count);
            while (best.TryDequeue(out int row, out float score)) results.Add((_ids[row], score));
            results.Reverse();
            return results;
        }
    }

    public static string SidecarPath(string indexPath) => indexPath + ".sha256";

    private static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream));
    }

    private sealed record IndexSidecar(string Sha256, int Count, long Generation, int Dimensions);

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
