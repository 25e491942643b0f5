using CkLlm.Engine.Model.Gguf;

namespace CkLlm.Engine.Model.Generation;

public sealed record ModelGenerationOptions
{
    public ModelPreset Preset { get; init; } = ModelPreset.Tiny;

    /// <summary>The model family whose layout, tokenizer and chat template are written (sizes come from <see cref="Preset"/>).</summary>
    public ModelArchitecture Architecture { get; init; } = ModelArchitecture.Llama;

    /// <summary>Text the vocabulary is learned from; empty uses <see cref="SentencePieceVocabulary.DefaultCorpus"/>.</summary>
    public string Corpus { get; init; } = "";

    public int Seed { get; init; } = 42;

    /// <summary>A Jinja chat template to embed (tokenizer.chat_template); null keeps the architecture's own (none for Llama).</summary>
    public string? ChatTemplate { get; init; }

    public string Name { get; init; } = "ckllm-generated";

    /// <summary>
    /// The llama.cpp file type to write (a <see cref="ModelQuantization.Names"/> entry such as "Q8_0" or "Q4_K_M"): the
    /// F32 weights are quantized by llama.cpp, as the files users download are. Null or "F32" writes the F32 weights.
    /// </summary>
    public string? Quantization { get; init; }

    /// <summary>
    /// Extra control tokens (e.g. <c>&lt;|im_start|&gt;</c>) placed right after the byte tokens; empty keeps the classic layout.
    /// </summary>
    public IReadOnlyList<string> ControlTokens { get; init; } = [];

    /// <summary>The token that ends a turn (tokenizer.ggml.eot_token_id); null keeps the architecture's own. Must be a control token.</summary>
    public string? EndOfTurnToken { get; init; }

    /// <summary>These options plus the ChatML template and its two control tokens.</summary>
    public ModelGenerationOptions WithChatML() => this with
    {
        ChatTemplate = ChatTemplates.ChatML,
        ControlTokens = ChatTemplates.ChatMLTokens,
        EndOfTurnToken = ChatTemplates.ChatMLEndOfTurn,
    };
}

/// <summary>Chat templates a generated model can embed.</summary>
public static class ChatTemplates
{
    /// <summary>The ChatML Jinja template (Qwen-style), which llama.cpp recognises as "chatml".</summary>
    public const string ChatML =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}" +
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    public const string ChatMLEndOfTurn = "<|im_end|>";

    public static IReadOnlyList<string> ChatMLTokens { get; } = ["<|im_start|>", "<|im_end|>"];

    /// <summary>A Llama 3 instruct template (header tokens, <c>&lt;|eot_id|&gt;</c> after each turn); llama.cpp recognises it as "llama3".</summary>
    public const string Llama3 =
        "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}" +
        "{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}";

    /// <summary>A Phi-3 instruct template (<c>&lt;|user|&gt;</c> ... <c>&lt;|end|&gt;</c>); llama.cpp recognises it as "phi3".</summary>
    public const string Phi3 =
        "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + '<|end|>' + '\n'}}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}";

    /// <summary>A Gemma template (<c>&lt;start_of_turn&gt;</c> markers); llama.cpp recognises it as "gemma".</summary>
    public const string Gemma =
        "{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + message['role'] + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}" +
        "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";
}

/// <summary>
/// Writes a GGUF model from scratch in the layout of a model family (<see cref="ModelShape"/>): F32 weights from a
/// seeded normal(0, 0.02) initialisation, norms at one, and the family's tokenizer (a SentencePiece vocabulary learned
/// from a corpus, or cl100k byte-level BPE), optionally quantized by llama.cpp. Same options and seed, same bytes.
/// </summary>
public static class ModelGenerator
{
    /// <summary>
    /// Writes the model to <paramref name="path"/>. <paramref name="progress"/> receives the fraction done (0..1);
    /// <paramref name="cancellationToken"/> stops before the file is written (nothing is left behind).
    /// </summary>
    public static void Generate(string path, ModelGenerationOptions options, IProgress<double>? progress = null, CancellationToken cancellationToken = default)
    {
        var p = options.Preset;
        var quantization = options.Quantization is null ? ModelQuantization.Unquantized : ModelQuantization.Normalize(options.Quantization);
        var shape = ModelShape.For(options.Architecture);
        if (p.EmbeddingLength % p.HeadCount != 0 || p.HeadCount % p.HeadCountKv != 0)
            throw new ArgumentException($"Preset '{p.Name}' has inconsistent head counts.");
        var controls = shape.ControlTokens.Concat(options.ControlTokens).Distinct(StringComparer.Ordinal).ToList();
        IGeneratedVocabulary vocab = shape.Vocabulary == VocabularyKind.Cl100kBpe
            ? ByteLevelBpeVocabulary.FromCl100k(controls, shape.PreTokenizer)
            : SentencePieceVocabulary.Build(options.Corpus, p.VocabularySize, controls);
        progress?.Report(0.1);
        var random = new Random(options.Seed);
        int d = p.EmbeddingLength, hd = p.HeadDimension, kv = p.HeadCountKv * hd, ff = p.FeedForwardLength, nv = vocab.Count;
        string arch = shape.GgufArchitecture;

        var w = new GgufWriter()
            .Add("general.architecture", arch)
            .Add("general.name", options.Name)
            .Add("general.file_type", 0u) // ALL_F32
            .Add($"{arch}.context_length", (uint)p.ContextLength)
            .Add($"{arch}.embedding_length", (uint)d)
            .Add($"{arch}.block_count", (uint)p.BlockCount)
            .Add($"{arch}.feed_forward_length", (uint)ff)
            .Add($"{arch}.attention.head_count", (uint)p.HeadCount)
            .Add($"{arch}.attention.head_count_kv", (uint)p.HeadCountKv)
            .Add($"{arch}.attention.layer_norm_rms_epsilon", shape.RmsEpsilon)
            .Add($"{arch}.rope.dimension_count", (uint)hd)
            .Add($"{arch}.rope.freq_base", shape.RopeFreqBase)
            .Add($"{arch}.vocab_size", (uint)nv);
        if (shape.AttentionLogitSoftcap is float attnCap) w.Add($"{arch}.attn_logit_softcapping", attnCap);
        if (shape.FinalLogitSoftcap is float finalCap) w.Add($"{arch}.final_logit_softcapping", finalCap);
        if (shape.SlidingWindow) w.Add($"{arch}.attention.sliding_window", (uint)Math.Max(1, p.ContextLength / 4));

        vocab.AddTo(w);
        w.Add("tokenizer.ggml.bos_token_id", (uint)vocab.IdOf(shape.BosToken))
            .Add("tokenizer.ggml.eos_token_id", (uint)vocab.IdOf(shape.EosToken));
        if (shape.UnknownToken is not null) w.Add("tokenizer.ggml.unknown_token_id", (uint)vocab.IdOf(shape.UnknownToken));
        w.Add("tokenizer.ggml.add_bos_token", shape.AddBos)
            .Add("tokenizer.ggml.add_eos_token", false);
        var template = options.ChatTemplate ?? shape.ChatTemplate;
        if (template is not null) w.Add("tokenizer.chat_template", template);
        var endOfTurn = options.EndOfTurnToken ?? shape.EndOfTurnToken;
        if (endOfTurn is not null)
        {
            if (!controls.Contains(endOfTurn)) throw new ArgumentException($"End-of-turn token '{endOfTurn}' is not among the control tokens.");
            w.Add("tokenizer.ggml.eot_token_id", (uint)vocab.IdOf(endOfTurn));
        }

        w.AddTensor("token_embd.weight", [d, nv], Normal(random, d * nv));
        if (shape.RopeScaling is { } scaling) w.AddTensor("rope_freqs.weight", [hd / 2], scaling.FrequencyFactors(hd, shape.RopeFreqBase));
        for (int b = 0; b < p.BlockCount; b++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(0.1 + 0.7 * b / p.BlockCount);
            var prefix = $"blk.{b}.";
            w.AddTensor(prefix + "attn_norm.weight", [d], Ones(d));
            if (shape.FusedQkv)
                w.AddTensor(prefix + "attn_qkv.weight", [d, d + 2 * kv], Normal(random, d * (d + 2 * kv)));
            else
            {
                w.AddTensor(prefix + "attn_q.weight", [d, d], Normal(random, d * d));
                w.AddTensor(prefix + "attn_k.weight", [d, kv], Normal(random, d * kv));
                w.AddTensor(prefix + "attn_v.weight", [d, kv], Normal(random, d * kv));
            }
            if (shape.AttentionBiases)
            {
                // Larger than the weights' spread so a graph that dropped them would visibly differ.
                w.AddTensor(prefix + "attn_q.bias", [d], Normal(random, d, 0.5f));
                w.AddTensor(prefix + "attn_k.bias", [kv], Normal(random, kv, 0.5f));
                w.AddTensor(prefix + "attn_v.bias", [kv], Normal(random, kv, 0.5f));
            }
            w.AddTensor(prefix + "attn_output.weight", [d, d], Normal(random, d * d));
            if (shape.PostNorms) w.AddTensor(prefix + "post_attention_norm.weight", [d], Ones(d));
            w.AddTensor(prefix + "ffn_norm.weight", [d], Ones(d));
            if (shape.FusedGateUp)
                w.AddTensor(prefix + "ffn_up.weight", [d, 2 * ff], Normal(random, d * 2 * ff));
            else
            {
                w.AddTensor(prefix + "ffn_gate.weight", [d, ff], Normal(random, d * ff));
                w.AddTensor(prefix + "ffn_up.weight", [d, ff], Normal(random, d * ff));
            }
            w.AddTensor(prefix + "ffn_down.weight", [ff, d], Normal(random, ff * d));
            if (shape.PostNorms) w.AddTensor(prefix + "post_ffw_norm.weight", [d], Ones(d));
        }
        w.AddTensor("output_norm.weight", [d], Ones(d));
        if (!shape.TiedEmbeddings) w.AddTensor("output.weight", [d, nv], Normal(random, d * nv));
        cancellationToken.ThrowIfCancellationRequested();
        progress?.Report(0.8);
        if (quantization == ModelQuantization.Unquantized) w.WriteTo(path, cancellationToken);
        else ModelQuantization.WriteModelFile(path, quantization, unquantized =>
        {
            w.WriteTo(unquantized, cancellationToken);
            progress?.Report(0.85);
        }, cancellationToken);
        progress?.Report(1.0);
    }

    private static float[] Ones(int n)
    {
        var a = new float[n];
        Array.Fill(a, 1f);
        return a;
    }

    private static float[] Normal(Random random, int n, float std = 0.02f)
    {
        var a = new float[n];
        for (int i = 0; i < n; i += 2)
        {
            // Box-Muller: two normals per pair of uniforms.
            double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
            double r = Math.Sqrt(-2.0 * Math.Log(u1)) * std;
            a[i] = (float)(r * Math.Cos(2 * Math.PI * u2));
            if (i + 1 < n) a[i + 1] = (float)(r * Math.Sin(2 * Math.PI * u2));
        }
        return a;
    }
}
