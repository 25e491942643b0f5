using System.Numerics.Tensors;

namespace CkLlm.Engine.Knowledge.Search;

/// <summary>
/// One vector per document, for the document-level evidence of Hybrid search: the normalised mean of its chunk vectors,
/// pulled towards its opening chunk (title and first section). A question phrased around what a page is about, not
/// around one passage of it, is closer to that than to any single chunk. Built from the stored chunk vectors (no extra
/// embedding) when a search first needs a document, and kept until the knowledge base changes.
/// </summary>
internal sealed class DocumentVectors
{
    /// <summary>Share of the opening chunk in a document's vector (chosen on the evaluation sets' dev halves).</summary>
    public const float OpeningWeight = 0.3f;

    /// <summary>Documents kept at most (a vector each); beyond it the cache starts over.</summary>
    private const int MaxCached = 50_000;

    private readonly Dictionary<long, float[]> _cache = [];
    private readonly object _gate = new();
    private long _generation = long.MinValue;

    /// <summary>The vectors of <paramref name="sourceIds"/> at store generation <paramref name="generation"/>, reading
    /// the chunk vectors (in chunk order) of documents not cached yet with <paramref name="readChunkVectors"/>.</summary>
    public Dictionary<long, float[]> Get(IReadOnlyCollection<long> sourceIds, long generation,
        Func<IReadOnlyCollection<long>, Dictionary<long, List<float[]>>> readChunkVectors)
    {
        lock (_gate)
        {
            if (generation != _generation || _cache.Count > MaxCached)
            {
                _cache.Clear();
                _generation = generation;
            }
            var missing = sourceIds.Where(id => !_cache.ContainsKey(id)).ToList();
            if (missing.Count > 0)
                foreach (var (id, chunks) in readChunkVectors(missing)) _cache[id] = Combine(chunks);
            return sourceIds.Where(_cache.ContainsKey).ToDictionary(id => id, id => _cache[id]);
        }
    }

    /// <summary>(1 - w) x normalised mean + w x opening chunk, normalised (the chunk vectors are unit length).</summary>
    internal static float[] Combine(IReadOnlyList<float[]> chunks)
    {
        var mean = new float[chunks[0].Length];
        foreach (var v in chunks) TensorPrimitives.Add(mean, v, mean);
        Normalize(mean);
        var result = new float[mean.Length];
        TensorPrimitives.Multiply(mean, 1 - OpeningWeight, result);
        TensorPrimitives.MultiplyAdd(chunks[0], OpeningWeight, result, result);
        Normalize(result);
        return result;
    }

    private static void Normalize(float[] v)
    {
        var norm = TensorPrimitives.Norm(v);
        if (norm > 0) TensorPrimitives.Divide(v, norm, v);
    }
}
