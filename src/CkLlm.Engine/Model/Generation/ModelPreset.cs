namespace CkLlm.Engine.Model.Generation;

/// <summary>Shape of a generated llama-architecture model.</summary>
public sealed record ModelPreset(
    string Name,
    int EmbeddingLength,
    int BlockCount,
    int HeadCount,
    int HeadCountKv,
    int FeedForwardLength,
    int ContextLength,
    int VocabularySize)
{
    /// <summary>~165k parameters, under 1 MB: unit tests.</summary>
    public static ModelPreset Tiny { get; } = new("Tiny", 64, 2, 4, 2, 192, 512, 512);

    /// <summary>~5M parameters: integration tests and demos.</summary>
    public static ModelPreset Small { get; } = new("Small", 256, 4, 8, 4, 768, 1024, 4096);

    /// <summary>~100M parameters with a 32k vocabulary: benchmarks.</summary>
    public static ModelPreset Medium { get; } = new("Medium", 768, 10, 12, 4, 2048, 2048, 32000);

    public static IReadOnlyList<ModelPreset> All { get; } = [Tiny, Small, Medium];

    public static ModelPreset Get(string name) =>
        All.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"Unknown preset '{name}'. Known presets: {string.Join(", ", All.Select(p => p.Name))}.", nameof(name));

    public int HeadDimension => EmbeddingLength / HeadCount;

    public long ParameterCount
    {
        get
        {
            long d = EmbeddingLength, kv = (long)HeadCountKv * HeadDimension, ff = FeedForwardLength;
            long perBlock = 2 * d + d * d * 2 + d * kv * 2 + 3 * d * ff;
            return 2L * VocabularySize * d + d + BlockCount * perBlock;
        }
    }
}
