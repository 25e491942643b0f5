using CkLlm.Engine.Model.Gguf;

namespace CkLlm.Engine.Training;

/// <summary>A model the training graph cannot train faithfully; <see cref="Reason"/> says what differs.</summary>
public sealed class ModelNotTrainableException : NotSupportedException
{
    public ModelNotTrainableException(string path, string architecture, string reason)
        : base($"'{path}' cannot be fine-tuned: architecture '{architecture}' {reason}")
    {
        Path = path;
        Architecture = architecture;
        Reason = reason;
    }

    public string Path { get; }
    public string Architecture { get; }
    public string Reason { get; }
}

/// <summary>
/// Decides in managed code, before any native call, whether <see cref="LlamaGraph"/> computes what llama.cpp runs
/// for a model: a graph that silently differed would train against other attention than inference uses.
/// </summary>
public static class TrainingSupport
{
    /// <summary>Architectures whose blocks the training graph implements, with their RoPE mode (qwen2: NEOX and q/k/v biases).</summary>
    public static IReadOnlySet<string> TrainableArchitectures { get; } = new HashSet<string>(StringComparer.Ordinal) { "llama", "mistral", "qwen2" };

    /// <summary>Why the architectures people meet most often differ from the llama block.</summary>
    private static readonly Dictionary<string, string> KnownDifferences = new(StringComparer.Ordinal)
    {
        ["phi3"] = "fuses q/k/v into one attn_qkv projection and gate/up into one ffn_up, which the training graph does not split",
        ["gemma2"] = "adds post-attention and post-FFN norms, logit softcapping, GELU and sliding-window attention, which the training graph does not implement",
        ["gemma"] = "scales embeddings and uses GELU, which the training graph does not implement",
        ["gemma3"] = "adds q/k norms, post-norms and sliding-window attention, which the training graph does not implement",
        ["qwen3"] = "adds q/k norms, which the training graph does not implement",
        ["phi2"] = "uses LayerNorm, a parallel attention/FFN block and GELU, which the training graph does not implement",
    };

    /// <summary>Throws <see cref="ModelNotTrainableException"/> (or <see cref="GgufFormatException"/> for a malformed file).</summary>
    public static void Check(string path)
    {
        var file = GgufReader.Read(path);
        var reason = RefusalReason(file, out var architecture);
        if (reason is not null) throw new ModelNotTrainableException(file.Path, architecture, reason);
    }

    /// <summary>Null when the graph trains this model; otherwise the reason, completing "architecture 'x' ...".</summary>
    public static string? RefusalReason(GgufFile file, out string architecture)
    {
        architecture = file.GetStringOrNull("general.architecture") ?? throw new GgufFormatException(file.Path, "general.architecture is missing.");
        if (!TrainableArchitectures.Contains(architecture))
            return KnownDifferences.TryGetValue(architecture, out var known)
                ? known + $"; trainable architectures are {string.Join(", ", TrainableArchitectures)}."
                : $"is not one the training graph implements (trainable: {string.Join(", ", TrainableArchitectures)}).";
        var arch = architecture;
        if (file.Tensors.Any(t => t.Name.EndsWith(".attn_qkv.weight", StringComparison.Ordinal)))
            return "is stored with fused attn_qkv projections, which the training graph does not split.";
        if (file.TryGetUnsigned($"{arch}.expert_count", out var experts) && experts > 0)
            return $"is a mixture of experts ({experts} experts); the training graph has dense feed-forward blocks only.";
        if (file.TryGetValue($"{arch}.attention.head_count", out var heads) && heads.Value is GgufArray)
            return "has per-layer head counts, which the training graph does not support.";
        if (file.GetStringOrNull($"{arch}.rope.scaling.type") is { } scaling && scaling is not ("none" or "linear"))
            return $"uses RoPE scaling '{scaling}'; the training graph supports none, linear and llama3 frequency factors (rope_freqs).";
        uint? width = file.GetUInt32OrNull($"{arch}.embedding_length"), headCount = heads?.Value as uint?;
        if (file.GetUInt32OrNull($"{arch}.attention.key_length") is uint keyLength && width is uint d && headCount is uint h && h > 0 && keyLength * h != d)
            return $"has an attention key length ({keyLength}) different from width/heads ({d}/{h}), which the training graph does not support.";
        return null;
    }
}
