namespace CkLlm.Engine.Knowledge.Embedding;

/// <summary>Process-wide cache: loading MiniLM or a GGUF model is expensive and the instances are thread-safe.</summary>
internal static class EmbedderCache
{
    private static readonly object Gate = new();
    private static readonly Dictionary<string, IEmbedder> Loaded = new(StringComparer.Ordinal);

    public const string MiniLmKey = "minilm";

    /// <summary>null or "minilm" gives all-MiniLM-L6-v2; anything else is a GGUF file path.</summary>
    public static IEmbedder Get(string? model)
    {
        var key = string.IsNullOrEmpty(model) || string.Equals(model, MiniLmKey, StringComparison.OrdinalIgnoreCase)
            || string.Equals(model, MiniLmEmbedder.ModelId, StringComparison.OrdinalIgnoreCase)
            ? MiniLmKey
            : Path.GetFullPath(model);
        lock (Gate)
        {
            if (Loaded.TryGetValue(key, out var embedder)) return embedder;
            embedder = key == MiniLmKey ? new MiniLmEmbedder() : new GgufEmbedder(key);
            Loaded[key] = embedder;
            return embedder;
        }
    }

    /// <summary>Frees every cached embedder (session reset).</summary>
    public static void Clear()
    {
        lock (Gate)
        {
            foreach (var e in Loaded.Values) e.Dispose();
            Loaded.Clear();
        }
    }
}
