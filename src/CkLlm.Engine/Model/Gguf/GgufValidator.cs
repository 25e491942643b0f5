using System.Text.RegularExpressions;

namespace CkLlm.Engine.Model.Gguf;

/// <summary>A GGUF file that must not reach llama.cpp; <see cref="Reason"/> says why, for the user.</summary>
public sealed class GgufFormatException : Exception
{
    public GgufFormatException(string path, string reason)
        : base($"'{path}' is not a usable GGUF model: {reason}") { Path = path; Reason = reason; }

    public string Path { get; }
    public string Reason { get; }
}

/// <summary>What a validated GGUF model file declares.</summary>
public sealed record GgufModelSummary(
    string Path,
    string Architecture,
    string? Name,
    long ParameterCount,
    int ContextLength,
    int VocabularySize,
    string? ChatTemplate,
    long FileSize)
{
    public bool HasChatTemplate => !string.IsNullOrEmpty(ChatTemplate);

    /// <summary>GGUF version (2 or 3).</summary>
    public uint Version { get; init; }

    public int TensorCount { get; init; }

    /// <summary>The embedding width (<c>&lt;arch&gt;.embedding_length</c>).</summary>
    public int EmbeddingLength { get; init; }

    /// <summary>The number of transformer blocks (<c>&lt;arch&gt;.block_count</c>).</summary>
    public int BlockCount { get; init; }
}

/// <summary>
/// Validates a GGUF file in managed code before llama.cpp sees it: llama.cpp's asserts abort the whole process.
/// Structure (header, metadata, tensor table) is checked by <see cref="GgufReader"/>; this adds what llama.cpp's
/// model loader (llama-model.cpp, llama-vocab.cpp at c0c7e147) relies on: a supported architecture with its
/// hyper-parameters, a consistent tokenizer and, for llama, the exact per-block tensor set and shapes.
/// </summary>
public static class GgufValidator
{
    /// <summary>llama.cpp's upper bound on layers (LLAMA_MAX_LAYERS).</summary>
    public const int MaxBlockCount = 512;

    /// <summary>
    /// Architectures the bundled llama.cpp loads: LLM_ARCH_NAMES of llama-arch.cpp, each name confirmed present in the
    /// shipped libllama.so (its build is newer than the c0c7e147 the release notes name). "clip" is left out: it is a
    /// placeholder llama-quantize uses, not a model llama.cpp can run.
    /// </summary>
    public static IReadOnlySet<string> SupportedArchitectures { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "llama", "llama4", "deci", "falcon", "grok", "gpt2", "gptj", "gptneox", "mpt", "baichuan", "starcoder",
        "refact", "bert", "modern-bert", "nomic-bert", "nomic-bert-moe", "neo-bert", "jina-bert-v2", "jina-bert-v3",
        "eurobert", "bloom", "stablelm", "qwen", "qwen2", "qwen2moe", "qwen2vl", "qwen3", "qwen3moe", "qwen3next",
        "qwen3vl", "qwen3vlmoe", "qwen35", "qwen35moe", "phi2", "phi3", "phimoe", "plamo", "plamo2", "plamo3",
        "codeshell", "orion", "internlm2", "minicpm", "minicpm3", "gemma", "gemma2", "gemma3", "gemma3n", "gemma4",
        "gemma4-assistant", "gemma-embedding", "starcoder2", "mamba", "mamba2", "jamba", "falcon-h1", "xverse",
        "command-r", "cohere2", "cohere2moe", "dbrx", "olmo", "olmo2", "olmoe", "openelm", "arctic", "deepseek",
        "deepseek2", "deepseek2-ocr", "deepseek32", "deepseek4", "chatglm", "glm4", "glm4moe", "glm-dsa", "bitnet",
        "t5", "t5encoder", "jais", "jais2", "nemotron", "nemotron_h", "nemotron_h_moe", "exaone", "exaone4",
        "exaone-moe", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7", "granite", "granitemoe", "granitehybrid", "chameleon",
        "wavtokenizer-dec", "plm", "bailingmoe", "bailingmoe2", "dots1", "arcee", "afmoe", "laguna", "ernie4_5",
        "ernie4_5-moe", "hunyuan-moe", "hunyuan-dense", "hunyuan_vl", "hy_v3", "smollm3", "gpt-oss", "lfm2",
        "lfm2moe", "dream", "smallthinker", "llada", "llada-moe", "seed_oss", "grovemoe", "apertus", "minimax-m2",
        "cogvlm", "rnd1", "pangu-embedded", "mistral3", "eagle3", "dflash", "mistral4", "paddleocr", "mimo2",
        "step35", "llama-embed", "maincoder", "kimi-linear", "talkie", "mellum",
    };

    /// <summary>Tokenizer models llama-vocab.cpp knows (anything else makes it throw "unknown tokenizer").</summary>
    public static IReadOnlySet<string> SupportedTokenizers { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "no_vocab", "none", "llama", "bert", "gpt2", "t5", "rwkv", "plamo2",
    };

    private static readonly string[] SpecialTokenKeys =
    [
        "bos_token_id", "eos_token_id", "unknown_token_id", "seperator_token_id", "padding_token_id", "cls_token_id",
        "mask_token_id", "eot_token_id", "eom_token_id", "prefix_token_id", "suffix_token_id", "middle_token_id",
    ];

    private static readonly Regex BlockTensor = new(@"^blk\.(\d+)\.", RegexOptions.CultureInvariant);

    /// <summary>
    /// Reads and checks <paramref name="path"/>. Throws FileNotFoundException when it does not exist and
    /// <see cref="GgufFormatException"/> (with a human reason) for anything llama.cpp would abort or misbehave on.
    /// </summary>
    public static GgufModelSummary Validate(string path)
    {
        var file = GgufReader.Read(path);
        return Validate(file);
    }

    /// <summary>Checks an already parsed file (see <see cref="Validate(string)"/>).</summary>
    public static GgufModelSummary Validate(GgufFile file)
    {
        var path = file.Path;
        GgufFormatException Bad(string reason) => new(path, reason);

        foreach (var entry in file.Metadata)
            if (entry.Value.Value is GgufArray { ElementType: GgufValueType.Array })
                throw Bad($"metadata key '{entry.Key}' is an array of arrays, which llama.cpp cannot read.");

        if (!file.TryGetValue("general.architecture", out var archValue)) throw Bad("general.architecture is missing.");
        if (archValue.Value is not string arch) throw Bad($"general.architecture has type {archValue.Type}, expected String.");
        if (file.GetStringOrNull("general.type") is "adapter") throw Bad("it is a LoRA adapter, not a model (general.type = adapter).");
        if (!SupportedArchitectures.Contains(arch)) throw Bad($"architecture '{arch}' is not supported by the bundled llama.cpp.");

        CheckKnownKeyTypes(file, arch, Bad);

        uint RequiredUInt(string suffix, uint min, uint max)
        {
            var key = $"{arch}.{suffix}";
            if (!file.TryGetValue(key, out var v)) throw Bad($"hyper-parameter {key} is missing.");
            if (v.Value is not uint u) throw Bad($"hyper-parameter {key} has type {v.Type}, expected UInt32.");
            if (u < min || u > max) throw Bad($"hyper-parameter {key} = {u} is out of range ({min}..{max}).");
            return u;
        }

        uint contextLength = RequiredUInt("context_length", 1, int.MaxValue);
        uint embedding = RequiredUInt("embedding_length", 1, 1u << 20);
        uint blockCount = RequiredUInt("block_count", 1, MaxBlockCount);
        // head_count may also be a per-layer array; only the scalar form is checked further.
        var headKey = $"{arch}.attention.head_count";
        if (!file.TryGetValue(headKey, out var headValue)) throw Bad($"hyper-parameter {headKey} is missing.");
        uint? headCount = headValue.Value as uint?;
        if (headValue.Value is GgufArray headArray)
        {
            if (headArray.Count != blockCount) throw Bad($"{headKey} has {headArray.Count} entries, expected one per block ({blockCount}).");
        }
        else if (headCount is null) throw Bad($"hyper-parameter {headKey} has type {headValue.Type}, expected UInt32.");
        else if (headCount == 0 || headCount > embedding) throw Bad($"hyper-parameter {headKey} = {headCount} is out of range (1..{embedding}).");

        var vocabularySize = ValidateTokenizer(file, Bad);

        var tokenEmbedding = file.FindTensor("token_embd.weight") ?? throw Bad("tensor token_embd.weight is missing.");
        if (tokenEmbedding.Shape.Count != 2 || tokenEmbedding.Shape[0] != embedding || tokenEmbedding.Shape[1] != vocabularySize)
            throw Bad($"tensor token_embd.weight has shape [{string.Join(", ", tokenEmbedding.Shape)}], expected [{embedding}, {vocabularySize}] (embedding_length, token count).");

        foreach (var tensor in file.Tensors)
        {
            var m = BlockTensor.Match(tensor.Name);
            if (m.Success && (!int.TryParse(m.Groups[1].Value, out var block) || block >= blockCount))
                throw Bad($"tensor '{tensor.Name}' belongs to block {m.Groups[1].Value}, but block_count is {blockCount}.");
        }

        if (TensorLayouts.ContainsKey(arch))
            ValidateTensorSet(file, arch, embedding, blockCount, headCount ?? throw Bad($"{headKey} must be a single UInt32 for {arch}."), vocabularySize, Bad);

        return new GgufModelSummary(
            path, arch, file.GetStringOrNull("general.name"), file.Tensors.Sum(t => t.ElementCount),
            (int)Math.Min(contextLength, int.MaxValue), vocabularySize, file.GetStringOrNull("tokenizer.chat_template"), file.FileSize)
        {
            Version = file.Version,
            TensorCount = file.Tensors.Count,
            EmbeddingLength = (int)embedding,
            BlockCount = (int)blockCount,
        };
    }

    /// <summary>
    /// Keys llama.cpp reads with a strict type check (llama-model-loader's get_key throws "wrong type" otherwise);
    /// "%s" is the architecture. Per-layer keys may also be arrays.
    /// </summary>
    private static readonly (string Key, GgufValueType Type, bool MayBeArray)[] KnownKeyTypes =
    [
        ("general.file_type", GgufValueType.UInt32, false),
        ("general.quantization_version", GgufValueType.UInt32, false),
        ("%s.context_length", GgufValueType.UInt32, false),
        ("%s.embedding_length", GgufValueType.UInt32, false),
        ("%s.block_count", GgufValueType.UInt32, false),
        ("%s.vocab_size", GgufValueType.UInt32, false),
        ("%s.feed_forward_length", GgufValueType.UInt32, true),
        ("%s.expert_count", GgufValueType.UInt32, false),
        ("%s.expert_used_count", GgufValueType.UInt32, false),
        ("%s.attention.head_count", GgufValueType.UInt32, true),
        ("%s.attention.head_count_kv", GgufValueType.UInt32, true),
        ("%s.attention.key_length", GgufValueType.UInt32, false),
        ("%s.attention.value_length", GgufValueType.UInt32, false),
        ("%s.attention.layer_norm_rms_epsilon", GgufValueType.Float32, false),
        ("%s.attention.layer_norm_epsilon", GgufValueType.Float32, false),
        ("%s.rope.dimension_count", GgufValueType.UInt32, false),
        ("%s.rope.freq_base", GgufValueType.Float32, false),
        ("%s.rope.scaling.factor", GgufValueType.Float32, false),
        ("tokenizer.ggml.model", GgufValueType.String, false),
        ("tokenizer.ggml.pre", GgufValueType.String, false),
        ("tokenizer.ggml.add_bos_token", GgufValueType.Bool, false),
        ("tokenizer.ggml.add_eos_token", GgufValueType.Bool, false),
        ("tokenizer.ggml.add_space_prefix", GgufValueType.Bool, false),
        ("tokenizer.chat_template", GgufValueType.String, false),
    ];

    private static void CheckKnownKeyTypes(GgufFile file, string arch, Func<string, GgufFormatException> bad)
    {
        foreach (var (pattern, type, mayBeArray) in KnownKeyTypes)
        {
            var key = pattern.Replace("%s", arch, StringComparison.Ordinal);
            if (!file.TryGetValue(key, out var v) || v.Type == type) continue;
            if (mayBeArray && v.Value is GgufArray { ElementType: var element } && element == type) continue;
            throw bad($"metadata key '{key}' has type {v.Type}, but llama.cpp requires {type}.");
        }
        foreach (var suffix in SpecialTokenKeys)
        {
            var key = "tokenizer.ggml." + suffix;
            if (file.TryGetValue(key, out var v) && v.Type != GgufValueType.UInt32)
                throw bad($"metadata key '{key}' has type {v.Type}, but llama.cpp requires UInt32.");
        }
    }

    private static int ValidateTokenizer(GgufFile file, Func<string, GgufFormatException> bad)
    {
        if (!file.TryGetValue("tokenizer.ggml.model", out var modelValue)) throw bad("tokenizer.ggml.model is missing.");
        if (modelValue.Value is not string model) throw bad($"tokenizer.ggml.model has type {modelValue.Type}, expected String.");
        if (!SupportedTokenizers.Contains(model)) throw bad($"tokenizer model '{model}' is not supported by llama.cpp.");
        if (!file.TryGetValue("tokenizer.ggml.tokens", out var tokensValue)) throw bad("tokenizer.ggml.tokens is missing.");
        if (tokensValue.Value is not GgufArray { ElementType: GgufValueType.String } tokens)
            throw bad("tokenizer.ggml.tokens must be an array of strings.");
        if (tokens.Count == 0) throw bad("tokenizer.ggml.tokens is empty.");
        // llama-vocab.cpp asserts id_to_token.size() == token_to_id.size(): a repeated token text aborts the process.
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var token in (string[])tokens.Items)
            if (!seen.Add(token)) throw bad($"token '{token}' appears more than once in tokenizer.ggml.tokens.");

        // llama.cpp indexes scores and token types by token id without checking their length.
        CheckParallel("tokenizer.ggml.scores", GgufValueType.Float32);
        CheckParallel("tokenizer.ggml.token_type", GgufValueType.Int32);
        void CheckParallel(string key, GgufValueType elementType)
        {
            if (!file.TryGetValue(key, out var v)) return;
            if (v.Value is not GgufArray array || array.ElementType != elementType)
                throw bad($"{key} must be an array of {elementType}.");
            if (array.Count != tokens.Count) throw bad($"{key} has {array.Count} entries but there are {tokens.Count} tokens.");
        }

        if (model == "gpt2" && !(file.TryGetValue("tokenizer.ggml.merges", out var merges) && merges.Value is GgufArray { ElementType: GgufValueType.String }))
            throw bad("a gpt2 (BPE) tokenizer needs tokenizer.ggml.merges (an array of strings).");

        foreach (var suffix in SpecialTokenKeys)
        {
            var key = "tokenizer.ggml." + suffix;
            if (!file.TryGetValue(key, out var v)) continue;
            uint id = (uint)v.Value; // type checked in CheckKnownKeyTypes
            // 0xFFFFFFFF (-1) is llama.cpp's "none".
            if (id != uint.MaxValue && id >= tokens.Count) throw bad($"{key} = {id} is not a token id (there are {tokens.Count} tokens).");
        }
        return tokens.Count;
    }

    /// <summary>Sizes a block's tensors are checked against, from the hyper-parameters.</summary>
    private sealed record TensorDims(long Embedding, long Q, long K, long V, long FeedForward, long RopeHalf, bool Moe);

    /// <summary>One tensor llama-model.cpp creates: its name (blk.N. prefix added for block tensors), shape and whether it must exist.</summary>
    private readonly record struct ExpectedTensor(string Name, long[] Shape, bool Required);

    /// <summary>
    /// The tensor sets llama-model.cpp (c0c7e147 and the bundled build) loads for the dense architectures the project
    /// generates and trains: global tensors and per-block tensors. A file with a missing, misshapen or extra tensor is
    /// refused here with the tensor's name instead of failing inside llama.cpp.
    /// </summary>
    private static readonly Dictionary<string, (Func<TensorDims, ExpectedTensor[]> Global, Func<TensorDims, ExpectedTensor[]> Block)> TensorLayouts = new(StringComparer.Ordinal)
    {
        ["llama"] = (d => [.. CommonGlobal(d), new("rope_freqs.weight", [d.RopeHalf], false)], LlamaBlock),
        // Qwen2.5 ties output to token_embd in its small sizes; q/k/v biases are part of every real file.
        ["qwen2"] = (CommonGlobal, d => [.. LlamaBlock(d).Where(t => t.Name != "rope_freqs.weight")]),
        ["phi3"] = (d => [.. CommonGlobal(d, outputRequired: true), new("rope_factors_long.weight", [d.RopeHalf], false), new("rope_factors_short.weight", [d.RopeHalf], false)],
            d =>
            [
                new("attn_norm.weight", [d.Embedding], true),
                // Fused projections; llama.cpp also accepts separate q/k/v when attn_qkv is absent.
                new("attn_qkv.weight", [d.Embedding, d.Q + d.K + d.V], false),
                new("attn_q.weight", [d.Embedding, d.Q], false),
                new("attn_k.weight", [d.Embedding, d.K], false),
                new("attn_v.weight", [d.Embedding, d.V], false),
                new("attn_output.weight", [d.Q, d.Embedding], true),
                new("ffn_norm.weight", [d.Embedding], true),
                new("ffn_up.weight", [d.Embedding, 2 * d.FeedForward], true),
                new("ffn_down.weight", [d.FeedForward, d.Embedding], true),
            ]),
        ["gemma2"] = (CommonGlobal, d =>
            [
                new("attn_norm.weight", [d.Embedding], true),
                new("attn_q.weight", [d.Embedding, d.Q], true),
                new("attn_k.weight", [d.Embedding, d.K], true),
                new("attn_v.weight", [d.Embedding, d.V], true),
                new("attn_output.weight", [d.Q, d.Embedding], true),
                new("post_attention_norm.weight", [d.Embedding], true),
                new("ffn_norm.weight", [d.Embedding], true),
                new("ffn_gate.weight", [d.Embedding, d.FeedForward], true),
                new("ffn_up.weight", [d.Embedding, d.FeedForward], true),
                new("ffn_down.weight", [d.FeedForward, d.Embedding], true),
                new("post_ffw_norm.weight", [d.Embedding], true),
            ]),
    };

    private static ExpectedTensor[] CommonGlobal(TensorDims d) => CommonGlobal(d, outputRequired: false);

    // Without output.weight llama.cpp ties the output projection to token_embd (its shape is checked by the caller).
    private static ExpectedTensor[] CommonGlobal(TensorDims d, bool outputRequired) =>
    [
        new("output_norm.weight", [d.Embedding], true),
        new("output.weight", [d.Embedding, -1], outputRequired),
    ];

    /// <summary>LLM_ARCH_LLAMA's block (dense FFN; MoE blocks are only checked loosely).</summary>
    private static ExpectedTensor[] LlamaBlock(TensorDims d)
    {
        var tensors = new List<ExpectedTensor>
        {
            new("attn_norm.weight", [d.Embedding], true),
            new("attn_q.weight", [d.Embedding, d.Q], true),
            new("attn_k.weight", [d.Embedding, d.K], true),
            new("attn_v.weight", [d.Embedding, d.V], true),
            new("attn_output.weight", [d.Q, d.Embedding], true),
            new("attn_q.bias", [d.Q], false),
            new("attn_k.bias", [d.K], false),
            new("attn_v.bias", [d.V], false),
            new("attn_output.bias", [d.Embedding], false),
            new("ffn_norm.weight", [d.Embedding], true),
            new("rope_freqs.weight", [d.RopeHalf], false),
        };
        if (!d.Moe)
        {
            tensors.Add(new("ffn_gate.weight", [d.Embedding, d.FeedForward], true));
            tensors.Add(new("ffn_down.weight", [d.FeedForward, d.Embedding], true));
            tensors.Add(new("ffn_up.weight", [d.Embedding, d.FeedForward], true));
            tensors.Add(new("ffn_gate.bias", [d.FeedForward], false));
            tensors.Add(new("ffn_down.bias", [d.Embedding], false));
            tensors.Add(new("ffn_up.bias", [d.FeedForward], false));
        }
        return [.. tensors];
    }

    /// <summary>Hyper-parameters and the exact tensor set of one of <see cref="TensorLayouts"/>' architectures.</summary>
    private static void ValidateTensorSet(GgufFile file, string arch, uint embedding, uint blockCount, uint headCount, int vocab, Func<string, GgufFormatException> bad)
    {
        uint headCountKv = file.GetUInt32OrNull($"{arch}.attention.head_count_kv") ?? headCount;
        if (headCountKv == 0 || headCount % headCountKv != 0)
            throw bad($"{arch}.attention.head_count_kv = {headCountKv} does not divide head_count = {headCount}.");
        uint headDimK = file.GetUInt32OrNull($"{arch}.attention.key_length") ?? (embedding % headCount == 0 ? embedding / headCount : 0);
        uint headDimV = file.GetUInt32OrNull($"{arch}.attention.value_length") ?? headDimK;
        if (headDimK == 0 || headDimV == 0) throw bad($"{arch}.embedding_length {embedding} is not a multiple of head_count {headCount}.");
        if (!file.TryGetValue($"{arch}.attention.layer_norm_rms_epsilon", out var eps) || eps.Value is not float)
            throw bad($"hyper-parameter {arch}.attention.layer_norm_rms_epsilon (Float32) is missing.");
        uint rope = file.GetUInt32OrNull($"{arch}.rope.dimension_count") ?? headDimK;
        if (rope == 0 || rope > headDimK)
            throw bad($"{arch}.rope.dimension_count = {rope} exceeds the head dimension {headDimK}.");
        bool moe = arch == "llama" && file.TryGetUnsigned("llama.expert_count", out var experts) && experts > 0;
        uint ff = 0;
        if (!moe)
        {
            if (!file.TryGetValue($"{arch}.feed_forward_length", out var ffValue) || ffValue.Value is not uint f || f == 0)
                throw bad($"hyper-parameter {arch}.feed_forward_length (UInt32 > 0) is missing.");
            ff = f;
        }

        var dims = new TensorDims(embedding, (long)headDimK * headCount, (long)headDimK * headCountKv, (long)headDimV * headCountKv, ff, rope / 2, moe);
        var (global, block) = TensorLayouts[arch];
        var expected = new Dictionary<string, (long[] Shape, bool Required)>(StringComparer.Ordinal)
        {
            ["token_embd.weight"] = ([embedding, vocab], true),
        };
        foreach (var t in global(dims)) expected[t.Name] = (t.Shape.Select(x => x < 0 ? vocab : x).ToArray(), t.Required);
        var blockTensors = block(dims);
        for (int b = 0; b < blockCount; b++)
            foreach (var t in blockTensors)
                expected[$"blk.{b}.{t.Name}"] = (t.Shape, t.Required);

        foreach (var (name, (shape, required)) in expected)
        {
            var tensor = file.FindTensor(name);
            if (tensor is null)
            {
                if (required) throw bad($"tensor {name} is missing ({arch} block_count {blockCount} needs it).");
                continue;
            }
            if (!tensor.Shape.SequenceEqual(shape))
                throw bad($"tensor {name} has shape [{string.Join(", ", tensor.Shape)}], expected [{string.Join(", ", shape)}] from the hyper-parameters.");
        }
        if (arch == "phi3")
            for (int b = 0; b < blockCount; b++)
            {
                bool fused = file.FindTensor($"blk.{b}.attn_qkv.weight") is not null;
                bool separate = new[] { "attn_q", "attn_k", "attn_v" }.All(n => file.FindTensor($"blk.{b}.{n}.weight") is not null);
                if (fused == separate) throw bad($"block {b} of a phi3 model needs either attn_qkv.weight or attn_q/attn_k/attn_v.weight, not {(fused ? "both" : "neither")}.");
            }
        if (!moe)
        {
            // llama.cpp refuses files with tensors it did not load ("wrong number of tensors").
            var extra = file.Tensors.FirstOrDefault(t => !expected.ContainsKey(t.Name));
            if (extra is not null) throw bad($"tensor '{extra.Name}' is not part of a {arch} model.");
        }
    }
}
