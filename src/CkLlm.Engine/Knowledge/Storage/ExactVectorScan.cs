using System.Numerics.Tensors;

namespace CkLlm.Engine.Knowledge.Storage;

/// <summary>
/// Brute-force cosine search over a contiguous copy of the normalised vectors (one row per key; removal moves the
/// last row into the hole). Not thread-safe: its owners serialise calls.
/// </summary>
internal sealed class ExactVectorScan(int dimensions)
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

    public int Count => _ids.Count;

    public IEnumerable<long> Keys => _ids;

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
