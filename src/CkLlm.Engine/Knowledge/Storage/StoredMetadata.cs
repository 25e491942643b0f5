using System.Text.Json;

namespace CkLlm.Engine.Knowledge.Storage;

/// <summary>Source and chunk metadata as stored: a JSON object of strings (null when empty), keys case-insensitive.</summary>
internal static class StoredMetadata
{
    public static string? Serialize(IReadOnlyDictionary<string, string>? metadata) =>
        metadata is null || metadata.Count == 0 ? null : JsonSerializer.Serialize(metadata);

    public static IReadOnlyDictionary<string, string> Parse(string? json) =>
        json is null ? new Dictionary<string, string>() :
        new Dictionary<string, string>(JsonSerializer.Deserialize<Dictionary<string, string>>(json) ?? [], StringComparer.OrdinalIgnoreCase);

    /// <summary>A chunk's metadata: the source's, overridden by the chunk's own (records carry per-record fields).</summary>
    public static IReadOnlyDictionary<string, string>? Merge(IReadOnlyDictionary<string, string>? source, IReadOnlyDictionary<string, string>? chunk)
    {
        if (source is null || source.Count == 0) return chunk;
        if (chunk is null || chunk.Count == 0) return source;
        var merged = new Dictionary<string, string>(source, StringComparer.OrdinalIgnoreCase);
        foreach (var (k, v) in chunk) merged[k] = v;
        return merged;
    }
}

/// <summary>Vectors as both stores keep them: float32 bytes in machine order (little-endian here).</summary>
internal static class StoredVector
{
    public static byte[] ToBytes(float[] vector) => System.Runtime.InteropServices.MemoryMarshal.AsBytes(vector.AsSpan()).ToArray();

    public static float[] FromBytes(byte[] bytes) => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray();

    /// <summary>Appends a stored vector to its source's list (reading chunk vectors grouped by source).</summary>
    public static void AddTo(Dictionary<long, List<float[]>> bySource, long sourceId, byte[] bytes)
    {
        if (!bySource.TryGetValue(sourceId, out var list)) bySource[sourceId] = list = [];
        list.Add(FromBytes(bytes));
    }
}
