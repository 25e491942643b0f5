using CkLlm.Engine.Model.Gguf;

namespace CkLlm.Engine.Model.Generation;

public sealed record ModelGenerationOptions
{
    public ModelPreset Preset { get; init; } = ModelPreset.Tiny;

    /// <summary>Text the vocabulary is learned from; empty uses <see cref="SentencePieceVocabulary.DefaultCorpus"/>.</summary>
    public string Corpus { get; init; } = "";

    public int Seed { get; init; } = 42;

    /// <summary>A Jinja chat template to embed (tokenizer.chat_template), or null for none.</summary>
    public string? ChatTemplate { get; init; }

    public string Name { get; init; } = "ckllm-generated";

    /// <summary>
    /// Extra control tokens (e.g. <c>&lt;|im_start|&gt;</c>) placed right after the byte tokens; empty keeps the classic layout.
    /// </summary>
    public IReadOnlyList<string> ControlTokens { get; init; } = [];

    /// <summary>The token that ends a turn (tokenizer.ggml.eot_token_id), or null; must be one of <see cref="ControlTokens"/>.</summary>
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
}

/// <summary>
/// Writes a llama-architecture GGUF from scratch: F32 weights from a seeded normal(0, 0.02) initialisation and a
/// vocabulary learned from a corpus. Same options and seed, same bytes.
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
        if (p.EmbeddingLength % p.HeadCount != 0 || p.HeadCount % p.HeadCountKv != 0)
            throw new ArgumentException($"Preset '{p.Name}' has inconsistent head counts.");
        var vocab = SentencePieceVocabulary.Build(options.Corpus, p.VocabularySize, options.ControlTokens);
        progress?.Report(0.1);
        var random = new Random(options.Seed);
        int d = p.EmbeddingLength, kv = p.HeadCountKv * p.HeadDimension, ff = p.FeedForwardLength, nv = vocab.Count;

        var w = new GgufWriter()
            .Add("general.architecture", "llama")
            .Add("general.name", options.Name)
            .Add("general.file_type", 0u) // ALL_F32
            .Add("llama.context_length", (uint)p.ContextLength)
            .Add("llama.embedding_length", (uint)d)
            .Add("llama.block_count", (uint)p.BlockCount)
            .Add("llama.feed_forward_length", (uint)ff)
            .Add("llama.attention.head_count", (uint)p.HeadCount)
            .Add("llama.attention.head_count_kv", (uint)p.HeadCountKv)
            .Add("llama.attention.layer_norm_rms_epsilon", 1e-5f)
            .Add("llama.rope.dimension_count", (uint)p.HeadDimension)
            .Add("llama.rope.freq_base", 10000f)
            .Add("llama.vocab_size", (uint)nv)
            .Add("tokenizer.ggml.model", "llama")
            .Add("tokenizer.ggml.tokens", vocab.Tokens)
            .Add("tokenizer.ggml.scores", vocab.Scores)
            .Add("tokenizer.ggml.token_type", vocab.TokenTypes)
            .Add("tokenizer.ggml.bos_token_id", (uint)SentencePieceVocabulary.BosId)
            .Add("tokenizer.ggml.eos_token_id", (uint)SentencePieceVocabulary.EosId)
            .Add("tokenizer.ggml.unknown_token_id", (uint)SentencePieceVocabulary.UnknownId)
            .Add("tokenizer.ggml.add_bos_token", true)
            .Add("tokenizer.ggml.add_eos_token", false);
        if (options.ChatTemplate is not null) w.Add("tokenizer.chat_template", options.ChatTemplate);
        if (options.EndOfTurnToken is not null)
        {
            int eot = vocab.Tokens.IndexOf(options.EndOfTurnToken);
            if (eot < 0) throw new ArgumentException($"End-of-turn token '{options.EndOfTurnToken}' is not among the control tokens.");
            w.Add("tokenizer.ggml.eot_token_id", (uint)eot);
        }

        w.AddTensor("token_embd.weight", [d, nv], Normal(random, d * nv));
        for (int b = 0; b < p.BlockCount; b++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(0.1 + 0.7 * b / p.BlockCount);
            var prefix = $"blk.{b}.";
            w.AddTensor(prefix + "attn_norm.weight", [d], Ones(d));
            w.AddTensor(prefix + "attn_q.weight", [d, d], Normal(random, d * d));
            w.AddTensor(prefix + "attn_k.weight", [d, kv], Normal(random, d * kv));
            w.AddTensor(prefix + "attn_v.weight", [d, kv], Normal(random, d * kv));
            w.AddTensor(prefix + "attn_output.weight", [d, d], Normal(random, d * d));
            w.AddTensor(prefix + "ffn_norm.weight", [d], Ones(d));
            w.AddTensor(prefix + "ffn_gate.weight", [d, ff], Normal(random, d * ff));
            w.AddTensor(prefix + "ffn_up.weight", [d, ff], Normal(random, d * ff));
            w.AddTensor(prefix + "ffn_down.weight", [ff, d], Normal(random, ff * d));
        }
        w.AddTensor("output_norm.weight", [d], Ones(d));
        w.AddTensor("output.weight", [d, nv], Normal(random, d * nv));
        cancellationToken.ThrowIfCancellationRequested();
        progress?.Report(0.8);
        w.WriteTo(path, cancellationToken);
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
