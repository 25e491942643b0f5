namespace CkLlm.Engine.Model.Generation;

/// <summary>Model families New-CkModel can write, each with the tensor layout and tokenizer of the real downloads.</summary>
public enum ModelArchitecture
{
    /// <summary>The classic generated llama: SentencePiece vocabulary learned from the corpus, separate output matrix.</summary>
    Llama,

    /// <summary>Llama-3.2-1B-like: llama with GQA, llama3 RoPE frequency factors, tied embeddings, cl100k byte-level BPE, llama3 chat template.</summary>
    Llama3,

    /// <summary>Qwen2.5-like: qwen2 with q/k/v biases, NEOX RoPE, tied embeddings, cl100k byte-level BPE, ChatML.</summary>
    Qwen2,

    /// <summary>SmolLM2/Mistral-like llama: GQA, untied output, SentencePiece vocabulary, ChatML.</summary>
    SmolLM,

    /// <summary>Phi-3-like (inference only): phi3 with fused qkv and gate/up projections, Phi-3 chat template.</summary>
    Phi3,

    /// <summary>Gemma-2-like (inference only): gemma2 with post-attention/post-FFN norms, logit softcapping, GELU, sliding window.</summary>
    Gemma2,
}

public enum VocabularyKind
{
    /// <summary>llama.cpp "llama" (SPM): pieces learned from the corpus, byte fallback.</summary>
    SentencePiece,

    /// <summary>llama.cpp "gpt2": byte-level BPE with the cl100k_base ranks (100k+ tokens).</summary>
    Cl100kBpe,
}

/// <summary>Llama 3.1/3.2 RoPE scaling, which converters bake into a <c>rope_freqs.weight</c> tensor of per-frequency divisors.</summary>
public sealed record Llama3RopeScaling(float Factor, float LowFrequencyFactor, float HighFrequencyFactor, int OriginalContextLength)
{
    public static Llama3RopeScaling Llama32 { get; } = new(32, 1, 4, 8192);

    /// <summary>
    /// One divisor per rotated pair: 1 for short wavelengths, <see cref="Factor"/> for wavelengths longer than the
    /// original context, and a smooth blend in between (Meta's published llama3 scaling rule).
    /// </summary>
    public float[] FrequencyFactors(int ropeDimensions, float freqBase)
    {
        double lowWavelength = OriginalContextLength / LowFrequencyFactor;
        double highWavelength = OriginalContextLength / HighFrequencyFactor;
        var factors = new float[ropeDimensions / 2];
        for (int i = 0; i < factors.Length; i++)
        {
            double wavelength = 2 * Math.PI * Math.Pow(freqBase, 2.0 * i / ropeDimensions);
            if (wavelength < highWavelength) factors[i] = 1;
            else if (wavelength > lowWavelength) factors[i] = Factor;
            else
            {
                double smooth = (OriginalContextLength / wavelength - LowFrequencyFactor) / (HighFrequencyFactor - LowFrequencyFactor);
                factors[i] = (float)(1 / ((1 - smooth) / Factor + smooth));
            }
        }
        return factors;
    }
}

/// <summary>
/// The layout of one model family: GGUF architecture name, tokenizer, chat template and which tensors a block has.
/// Sizes come from a <see cref="ModelPreset"/>; the shape says what the real models of the family look like.
/// </summary>
public sealed record ModelShape
{
    public required ModelArchitecture Architecture { get; init; }

    /// <summary>general.architecture, the prefix of every hyper-parameter key.</summary>
    public required string GgufArchitecture { get; init; }

    public VocabularyKind Vocabulary { get; init; } = VocabularyKind.SentencePiece;

    /// <summary>tokenizer.ggml.pre for a BPE vocabulary.</summary>
    public string PreTokenizer { get; init; } = "llama-bpe";

    /// <summary>Control tokens the family's template and special ids use (added after the ordinary tokens).</summary>
    public IReadOnlyList<string> ControlTokens { get; init; } = [];

    public string BosToken { get; init; } = "<s>";
    public string EosToken { get; init; } = "</s>";
    public string? UnknownToken { get; init; } = "<unk>";
    public string? EndOfTurnToken { get; init; }
    public bool AddBos { get; init; } = true;
    public string? ChatTemplate { get; init; }

    /// <summary>No output.weight: llama.cpp projects logits with token_embd.weight.</summary>
    public bool TiedEmbeddings { get; init; }

    /// <summary>attn_q/attn_k/attn_v biases (qwen2).</summary>
    public bool AttentionBiases { get; init; }

    /// <summary>One attn_qkv.weight instead of attn_q/k/v (phi3).</summary>
    public bool FusedQkv { get; init; }

    /// <summary>One ffn_up.weight of twice the width holding gate and up (phi3).</summary>
    public bool FusedGateUp { get; init; }

    /// <summary>post_attention_norm and post_ffw_norm in every block (gemma2).</summary>
    public bool PostNorms { get; init; }

    public float RopeFreqBase { get; init; } = 10000f;
    public Llama3RopeScaling? RopeScaling { get; init; }
    public float RmsEpsilon { get; init; } = 1e-5f;
    public float? AttentionLogitSoftcap { get; init; }
    public float? FinalLogitSoftcap { get; init; }

    /// <summary>Sliding-window attention over this fraction of the context (gemma2 alternates local and global layers).</summary>
    public bool SlidingWindow { get; init; }

    public static ModelShape Llama { get; } = new() { Architecture = ModelArchitecture.Llama, GgufArchitecture = "llama" };

    public static ModelShape Llama3 { get; } = new()
    {
        Architecture = ModelArchitecture.Llama3,
        GgufArchitecture = "llama",
        Vocabulary = VocabularyKind.Cl100kBpe,
        PreTokenizer = "llama-bpe",
        ControlTokens = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        BosToken = "<|begin_of_text|>",
        EosToken = "<|end_of_text|>",
        UnknownToken = null,
        EndOfTurnToken = "<|eot_id|>",
        ChatTemplate = ChatTemplates.Llama3,
        TiedEmbeddings = true,
        RopeFreqBase = 500000f,
        RopeScaling = Llama3RopeScaling.Llama32,
    };

    public static ModelShape Qwen2 { get; } = new()
    {
        Architecture = ModelArchitecture.Qwen2,
        GgufArchitecture = "qwen2",
        Vocabulary = VocabularyKind.Cl100kBpe,
        PreTokenizer = "qwen2",
        ControlTokens = ["<|endoftext|>", .. ChatTemplates.ChatMLTokens],
        BosToken = "<|endoftext|>",
        EosToken = "<|im_end|>",
        UnknownToken = null,
        EndOfTurnToken = ChatTemplates.ChatMLEndOfTurn,
        AddBos = false,
        ChatTemplate = ChatTemplates.ChatML,
        TiedEmbeddings = true,
        AttentionBiases = true,
        RopeFreqBase = 1000000f,
        RmsEpsilon = 1e-6f,
    };

    public static ModelShape SmolLM { get; } = new()
    {
        Architecture = ModelArchitecture.SmolLM,
        GgufArchitecture = "llama",
        ControlTokens = ChatTemplates.ChatMLTokens,
        EndOfTurnToken = ChatTemplates.ChatMLEndOfTurn,
        ChatTemplate = ChatTemplates.ChatML,
        RopeFreqBase = 100000f,
    };

    public static ModelShape Phi3 { get; } = new()
    {
        Architecture = ModelArchitecture.Phi3,
        GgufArchitecture = "phi3",
        ControlTokens = ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
        EosToken = "<|endoftext|>",
        EndOfTurnToken = "<|end|>",
        ChatTemplate = ChatTemplates.Phi3,
        FusedQkv = true,
        FusedGateUp = true,
    };

    public static ModelShape Gemma2 { get; } = new()
    {
        Architecture = ModelArchitecture.Gemma2,
        GgufArchitecture = "gemma2",
        ControlTokens = ["<start_of_turn>", "<end_of_turn>"],
        EndOfTurnToken = "<end_of_turn>",
        ChatTemplate = ChatTemplates.Gemma,
        TiedEmbeddings = true,
        PostNorms = true,
        RmsEpsilon = 1e-6f,
        AttentionLogitSoftcap = 50f,
        FinalLogitSoftcap = 30f,
        SlidingWindow = true,
    };

    public static IReadOnlyList<ModelShape> All { get; } = [Llama, Llama3, Qwen2, SmolLM, Phi3, Gemma2];

    public static ModelShape For(ModelArchitecture architecture) => All.First(s => s.Architecture == architecture);
}
