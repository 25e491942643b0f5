using CkLlm.Engine.Model.Gguf;
using CkLlm.Engine.Training.Native;

namespace CkLlm.Engine.Training;

/// <summary>The llama-family hyper-parameters the forward graph needs, read from GGUF metadata as llama.cpp reads them.</summary>
internal sealed record LlamaHyperParameters(
    string Architecture,
    int EmbeddingLength,
    int BlockCount,
    int HeadCount,
    int HeadCountKv,
    int HeadDimension,
    int FeedForwardLength,
    int ContextLength,
    int VocabularySize,
    float RmsEpsilon,
    int RopeDimensions,
    int RopeMode,
    float RopeFreqBase,
    float RopeFreqScale)
{
    /// <summary>Architectures whose graph is the plain llama block (qwen2 adds q/k/v biases and NEOX RoPE).</summary>
    public static readonly IReadOnlyDictionary<string, int> RopeModes = new Dictionary<string, int>
    {
        ["llama"] = Ggml.RopeTypeNormal,
        ["mistral"] = Ggml.RopeTypeNormal,
        ["qwen2"] = Ggml.RopeTypeNeox,
    };

    public static LlamaHyperParameters Read(GgufModelFile file)
    {
        var arch = file.GetString("general.architecture")
                   ?? throw new GgufFormatException(file.Path, "general.architecture is missing.");
        if (!RopeModes.TryGetValue(arch, out var ropeMode))
            throw new ModelNotTrainableException(file.Path, arch, $"is not one the training graph implements (trainable: {string.Join(", ", RopeModes.Keys)}).");
        int Required(string key) => checked((int)(file.GetInteger($"{arch}.{key}")
                                                  ?? throw new GgufFormatException(file.Path, $"{arch}.{key} is missing.")));
        int d = Required("embedding_length"), heads = Required("attention.head_count");
        int headsKv = (int)(file.GetInteger($"{arch}.attention.head_count_kv") ?? heads);
        if (heads <= 0 || headsKv <= 0 || d % heads != 0 || heads % headsKv != 0)
            throw new GgufFormatException(file.Path, $"inconsistent head counts ({heads} heads, {headsKv} KV heads, width {d}).");
        int headDim = (int)(file.GetInteger($"{arch}.attention.key_length") ?? d / heads);
        if (headDim * heads != d)
            throw new ModelNotTrainableException(file.Path, arch, $"has an attention key length ({headDim}) different from width/heads ({d}/{heads}), which the training graph does not support.");

        float freqScale = 1f;
        var scaling = file.GetString($"{arch}.rope.scaling.type");
        if (scaling is not null && scaling != "none")
        {
            if (scaling != "linear")
                throw new ModelNotTrainableException(file.Path, arch, $"uses RoPE scaling '{scaling}'; the training graph supports none, linear and llama3 frequency factors (rope_freqs).");
            var factor = file.GetReal($"{arch}.rope.scaling.factor") ?? 1;
            if (factor > 0) freqScale = (float)(1 / factor);
        }

        var token = file.RequireTensor("token_embd.weight");
        int vocab = (int)Ggml.Shape(token)[1];
        return new LlamaHyperParameters(
            arch, d, Required("block_count"), heads, headsKv, headDim, Required("feed_forward_length"),
            Required("context_length"), vocab,
            (float)(file.GetReal($"{arch}.attention.layer_norm_rms_epsilon") ?? 1e-5),
            (int)(file.GetInteger($"{arch}.rope.dimension_count") ?? headDim),
            ropeMode,
            (float)(file.GetReal($"{arch}.rope.freq_base") ?? 10000.0),
            freqScale);
    }
}

/// <summary>The projections LoRA can adapt, by their GGUF tensor suffix.</summary>
public static class LoraTargets
{
    /// <summary>The default: every attention and feed-forward projection of every block.</summary>
    public static IReadOnlyList<string> Default { get; } =
        ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];

    /// <summary>The output projection (not tied to the embedding); llama.cpp applies an adapter's output.weight pair too.</summary>
    public const string Output = "output";

    public static IReadOnlyList<string> All { get; } = [.. Default, Output];

    /// <summary>Block index used for the output projection's pair.</summary>
    internal const int OutputBlock = -1;
}

/// <summary>
/// Builds the llama forward graph from raw ggml ops over whole windows (no KV cache, so nothing is written in place
/// and ggml's autodiff can run through every layer): token embedding, RMSNorm, RoPE (with llama3 frequency factors
/// from rope_freqs.weight when present), grouped-query causal attention with optional q/k/v biases (qwen2), SwiGLU,
/// output norm and output projection (tied to the embedding when the file has no output tensor).
/// </summary>
internal sealed class LlamaGraph
{
    private readonly GgufModelFile _file;

    public LlamaHyperParameters Hyper { get; }
    public IntPtr TokenEmbedding { get; }
    public IntPtr Output { get; }
    public IntPtr OutputNorm { get; }

    /// <summary>rope_freqs.weight (llama3 RoPE scaling: one divisor per rotated pair), or zero.</summary>
    public IntPtr RopeFactors { get; }

    public LlamaGraph(GgufModelFile file)
    {
        _file = file;
        Hyper = LlamaHyperParameters.Read(file);
        TokenEmbedding = file.RequireTensor("token_embd.weight");
        Output = file.Tensor("output.weight") is var o && o != IntPtr.Zero ? o : TokenEmbedding;
        OutputNorm = file.RequireTensor("output_norm.weight");
        RopeFactors = file.Tensor("rope_freqs.weight");
        if (RopeFactors != IntPtr.Zero && Ggml.ggml_nelements(RopeFactors) != Hyper.RopeDimensions / 2)
            throw new GgufFormatException(file.Path, $"rope_freqs.weight has {Ggml.ggml_nelements(RopeFactors)} values, expected {Hyper.RopeDimensions / 2} (half the rotated dimensions).");
        for (int b = 0; b < Hyper.BlockCount; b++)
            foreach (var name in new[] { "attn_norm", "ffn_norm" }.Concat(LoraTargets.Default))
                file.RequireTensor($"blk.{b}.{name}.weight");
    }

    /// <summary>True when the file has its own output.weight (not tied to token_embd).</summary>
    public bool HasOutputTensor => Output != TokenEmbedding;

    /// <summary>
    /// False for tensors that are constants of the architecture rather than weights (rope_freqs: ggml has no gradient
    /// for frequency factors, and changing them would change the positions the model was trained for).
    /// </summary>
    public bool IsTrainable(IntPtr tensor) => tensor != RopeFactors;

    public IntPtr Weight(int block, string name) =>
        block == LoraTargets.OutputBlock ? Output : _file.RequireTensor($"blk.{block}.{name}.weight");

    /// <summary>Every weight the graph multiplies activations by: the projections of every block and the output.</summary>
    public IEnumerable<IntPtr> ProjectionWeights() =>
        Enumerable.Range(0, Hyper.BlockCount).SelectMany(b => LoraTargets.Default.Select(name => Weight(b, name))).Append(Output);

    public static string TensorName(int block, string name) =>
        block == LoraTargets.OutputBlock ? "output.weight" : $"blk.{block}.{name}.weight";

    private IntPtr Bias(int block, string name) => _file.Tensor($"blk.{block}.{name}.bias");

    /// <summary>Upper bound on graph nodes for forward + backward + optimizer graphs.</summary>
    public int GraphSize => 4096 + Hyper.BlockCount * 600;

    /// <summary>
    /// Logits [n_vocab, rows] for <paramref name="sequences"/> windows of <paramref name="length"/> tokens each.
    /// <paramref name="tokens"/> and <paramref name="positions"/> are I32 [length * sequences]; <paramref name="rows"/>
    /// (I32, optional) selects which flattened positions get logits, so the vocabulary-sized tensors only cover
    /// positions that are scored.
    /// </summary>
    public IntPtr BuildLogits(IntPtr ctx, IntPtr tokens, IntPtr positions, IntPtr rows, int length, int sequences, LoraWeights? lora)
    {
        var h = Hyper;
        int n = length * sequences;
        int headRepeat = h.HeadCount / h.HeadCountKv;
        float kqScale = 1f / MathF.Sqrt(h.HeadDimension);

        // (alpha / r) B (A x), scaled on the r-row intermediate: the same product as llama.cpp's scale of B (A x), with
        // the scale (and its gradient) over r rows instead of a projection's output (the vocabulary for 'output').
        IntPtr LoraDelta(IntPtr a, IntPtr b, IntPtr x) =>
            Ggml.ggml_mul_mat(ctx, b, Ggml.ggml_scale(ctx, Ggml.ggml_mul_mat(ctx, a, x), lora!.Scale));

        IntPtr Project(int block, string name, IntPtr x)
        {
            var y = Ggml.ggml_mul_mat(ctx, Weight(block, name), x);
            if (lora is not null && lora.TryGet(block, name, out var a, out var b))
                y = Ggml.ggml_add(ctx, y, LoraDelta(a, b, x));
            var bias = Bias(block, name);
            return bias == IntPtr.Zero ? y : Ggml.ggml_add(ctx, y, bias);
        }

        IntPtr Rope(IntPtr x) => Ggml.ggml_rope_ext(ctx, x, positions, RopeFactors, h.RopeDimensions, h.RopeMode, h.ContextLength,
            h.RopeFreqBase, h.RopeFreqScale, 0f, 1f, 32f, 1f);

        // [hd, heads, n] -> [hd, length, H, sequences]; KV heads are repeated so head j reads KV head j / repeat, as
        // mul_mat broadcasting does in llama.cpp, without relying on broadcast in the backward pass.
        IntPtr Heads(IntPtr x, int heads)
        {
            if (heads != h.HeadCount)
            {
                x = Ggml.ggml_reshape_4d(ctx, x, h.HeadDimension, 1, heads, n);
                x = Ggml.ggml_repeat_4d(ctx, x, h.HeadDimension, headRepeat, heads, n);
            }
            x = Ggml.ggml_reshape_4d(ctx, x, h.HeadDimension, h.HeadCount, length, sequences);
            return Ggml.ggml_permute(ctx, x, 0, 2, 1, 3);
        }

        var x = Ggml.ggml_get_rows(ctx, TokenEmbedding, tokens);
        for (int block = 0; block < h.BlockCount; block++)
        {
            var input = x;
            var cur = Ggml.ggml_mul(ctx, Ggml.ggml_rms_norm(ctx, x, h.RmsEpsilon), Weight(block, "attn_norm"));

            var q = Rope(Ggml.ggml_reshape_3d(ctx, Project(block, "attn_q", cur), h.HeadDimension, h.HeadCount, n));
            var k = Rope(Ggml.ggml_reshape_3d(ctx, Project(block, "attn_k", cur), h.HeadDimension, h.HeadCountKv, n));
            var v = Ggml.ggml_reshape_3d(ctx, Project(block, "attn_v", cur), h.HeadDimension, h.HeadCountKv, n);

            var qh = Heads(q, h.HeadCount);                       // [hd, T, H, S]
            var kh = Heads(k, h.HeadCountKv);                     // [hd, T, H, S]
            var vt = Ggml.ggml_cont(ctx, Ggml.ggml_transpose(ctx, Heads(v, h.HeadCountKv))); // [T, hd, H, S]

            var kq = Ggml.ggml_mul_mat(ctx, kh, qh);              // [T_k, T_q, H, S]
            kq = Ggml.ggml_diag_mask_inf(ctx, kq, 0);
            kq = Ggml.ggml_soft_max_ext(ctx, kq, IntPtr.Zero, kqScale, 0f);
            var kqv = Ggml.ggml_mul_mat(ctx, vt, kq);             // [hd, T_q, H, S]
            var merged = Ggml.ggml_cont_2d(ctx, Ggml.ggml_permute(ctx, kqv, 0, 2, 1, 3), h.EmbeddingLength, n);

            var attention = Project(block, "attn_output", merged);
            var ffnInput = Ggml.ggml_add(ctx, attention, input);

            cur = Ggml.ggml_mul(ctx, Ggml.ggml_rms_norm(ctx, ffnInput, h.RmsEpsilon), Weight(block, "ffn_norm"));
            var gated = Ggml.ggml_swiglu_split(ctx, Project(block, "ffn_gate", cur), Project(block, "ffn_up", cur));
            x = Ggml.ggml_add(ctx, Project(block, "ffn_down", gated), ffnInput);
        }

        x = Ggml.ggml_mul(ctx, Ggml.ggml_rms_norm(ctx, x, h.RmsEpsilon), OutputNorm);
        if (rows != IntPtr.Zero) x = Ggml.ggml_get_rows(ctx, x, rows);
        var logits = Ggml.ggml_mul_mat(ctx, Output, x);
        if (lora is not null && lora.TryGet(LoraTargets.OutputBlock, LoraTargets.Output, out var oa, out var ob))
            logits = Ggml.ggml_add(ctx, logits, LoraDelta(oa, ob, x));
        return logits;
    }
}
