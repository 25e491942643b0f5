using CkLlm.Engine.Model;
using CkLlm.Engine.Model.Gguf;
using LLama;
using LLama.Common;
using LLama.Native;

namespace CkLlm.Engine.Training;

/// <summary>Perplexity of a text under a model (optionally with a LoRA adapter), computed by llama.cpp itself.</summary>
public sealed record PerplexityResult(string ModelPath, string? AdapterPath, double Perplexity, double NegativeLogLikelihood, int TokenCount, int WindowCount);

/// <summary>
/// Scores tokens with llama.cpp through LLamaSharp, independently of the ggml training graph: the reference for the
/// graph's parity tests and for perplexity before/after training.
/// </summary>
public static class LlamaCppEvaluator
{
    private static ModelParams Parameters(string modelPath, int context) => new(modelPath)
    {
        ContextSize = (uint)context,
        BatchSize = (uint)context,
        UBatchSize = (uint)context,
        GpuLayerCount = 0,
        // Same spinning ggml threads as the training graph: only as many as there are idle cores.
        Threads = LlamaGraphModel.IdleCoreThreads(),
        BatchThreads = LlamaGraphModel.IdleCoreThreads(),
        // F32 KV cache and no flash attention: llama.cpp then computes in F32 like the training graph.
        TypeK = GGMLType.GGML_TYPE_F32,
        TypeV = GGMLType.GGML_TYPE_F32,
        FlashAttention = false,
    };

    /// <summary>Tokenizes with the model's own llama.cpp tokenizer (BOS added as the model asks).</summary>
    public static int[] Tokenize(string modelPath, string text, bool addBos = true)
    {
        var p = new ModelParams(modelPath) { ContextSize = 256, GpuLayerCount = 0, VocabOnly = true };
        using var weights = LLamaWeights.LoadFromFile(p);
        return weights.NativeHandle.Tokenize(text, addBos, false, System.Text.Encoding.UTF8).Select(t => (int)t).ToArray();
    }

    /// <summary>Logits (row per position) for one window of tokens; <paramref name="adapterPath"/> applies a LoRA at scale 1.</summary>
    internal static float[] Logits(string modelPath, string? adapterPath, int[] tokens)
    {
        var p = Parameters(modelPath, Math.Max(tokens.Length, 64));
        using var weights = LLamaWeights.LoadFromFile(p);
        using var context = weights.CreateContext(p);
        LoraAdapter? adapter;
        if (adapterPath is not null)
        {
            adapter = weights.NativeHandle.LoadLoraFromFile(adapterPath);
            context.NativeHandle.SetLoraAdapters([(adapter, 1f)]);
        }
        var batch = new LLamaBatch();
        for (int i = 0; i < tokens.Length; i++) batch.Add((LLamaToken)tokens[i], i, LLamaSeqId.Zero, true);
        var status = context.Decode(batch);
        if (status != DecodeResult.Ok) throw new InvalidOperationException($"llama.cpp decode failed: {status}.");
        int vocab = weights.Vocab.Count;
        var result = new float[(long)tokens.Length * vocab];
        for (int i = 0; i < tokens.Length; i++) context.NativeHandle.GetLogitsIth(i).CopyTo(result.AsSpan(i * vocab, vocab));
        return result;
    }

    /// <summary>
    /// Perplexity of <paramref name="text"/>: windows of <paramref name="contextLength"/> tokens (default: the model's
    /// training context, at most 512), each starting with BOS, every token after the first scored once.
    /// </summary>
    public static PerplexityResult MeasurePerplexity(string modelPath, string? adapterPath, string text, int contextLength = 0, CancellationToken cancellation = default)
    {
        if (string.IsNullOrWhiteSpace(text)) throw new ArgumentException("The text to measure is empty.", nameof(text));
        modelPath = Path.GetFullPath(modelPath);
        if (!File.Exists(modelPath)) throw new FileNotFoundException($"Model file '{modelPath}' does not exist.", modelPath);
        if (adapterPath is not null)
        {
            adapterPath = Path.GetFullPath(adapterPath);
            if (!File.Exists(adapterPath)) throw new FileNotFoundException($"Adapter file '{adapterPath}' does not exist.", adapterPath);
        }
        // llama.cpp aborts the process on many malformed files: the managed validator checks them first, and the
        // native log is routed (to the cmdlet's Verbose/Debug streams) before the first native call.
        var summary = GgufValidator.Validate(modelPath);
        if (adapterPath is not null) LoadedModel.ValidateAdapter(adapterPath, summary);
        NativeBackend.EnsureInitialized();
        var p0 = new ModelParams(modelPath) { ContextSize = 256, GpuLayerCount = 0 };
        LLamaWeights weights;
        try { weights = LLamaWeights.LoadFromFile(p0); }
        catch (LLama.Exceptions.LoadWeightsFailedException e) { throw new InvalidDataException($"llama.cpp could not load '{modelPath}'.", e); }
        using var _ = weights;
        int window = contextLength > 0 ? contextLength : Math.Min(512, weights.ContextSize > 0 ? weights.ContextSize : 512);
        if (window < 2) throw new ArgumentOutOfRangeException(nameof(contextLength), contextLength, "The context length must be at least 2.");
        var p = Parameters(modelPath, window);
        using var context = weights.CreateContext(p);
        if (adapterPath is not null)
        {
            var adapter = weights.NativeHandle.LoadLoraFromFile(adapterPath);
            context.NativeHandle.SetLoraAdapters([(adapter, 1f)]);
        }
        var all = weights.NativeHandle.Tokenize(text, false, false, System.Text.Encoding.UTF8).Select(t => (int)t).ToList();
        var bos = (int?)weights.Vocab.BOS;
        int vocab = weights.Vocab.Count;
        double nll = 0;
        int scored = 0, windows = 0;
        int step = bos is null ? window - 1 : window - 1;
        for (int start = 0; start < all.Count; start += step)
        {
            cancellation.ThrowIfCancellationRequested();
            var tokens = new List<int>();
            if (bos is not null) tokens.Add(bos.Value);
            tokens.AddRange(all.Skip(start).Take(window - tokens.Count));
            if (tokens.Count < 2) break;
            context.NativeHandle.MemoryClear();
            var batch = new LLamaBatch();
            for (int i = 0; i < tokens.Count; i++) batch.Add((LLamaToken)tokens[i], i, LLamaSeqId.Zero, i < tokens.Count - 1);
            var status = context.Decode(batch);
            if (status != DecodeResult.Ok) throw new InvalidOperationException($"llama.cpp decode failed: {status}.");
            for (int i = 0; i + 1 < tokens.Count; i++)
            {
                var logits = context.NativeHandle.GetLogitsIth(i);
                nll += LogSumExp(logits) - logits[tokens[i + 1]];
                scored++;
            }
            windows++;
            if (start + step >= all.Count) break;
        }
        if (scored == 0) throw new ArgumentException("The text is too short to measure (fewer than 2 tokens).", nameof(text));
        return new PerplexityResult(modelPath, adapterPath, Math.Exp(nll / scored), nll / scored, scored, windows);
    }

    /// <summary>Greedy (argmax) continuation of <paramref name="prompt"/> by llama.cpp, optionally with a LoRA adapter.</summary>
    public static string GreedyComplete(string modelPath, string? adapterPath, string prompt, int maxTokens)
    {
        var p = Parameters(modelPath, 256);
        using var weights = LLamaWeights.LoadFromFile(p);
        using var context = weights.CreateContext(p);
        if (adapterPath is not null)
            context.NativeHandle.SetLoraAdapters([(weights.NativeHandle.LoadLoraFromFile(adapterPath), 1f)]);
        var tokens = weights.NativeHandle.Tokenize(prompt, true, false, System.Text.Encoding.UTF8).ToList();
        var batch = new LLamaBatch();
        for (int i = 0; i < tokens.Count; i++) batch.Add(tokens[i], i, LLamaSeqId.Zero, i == tokens.Count - 1);
        var decoder = new StreamingTokenDecoder(context);
        for (int n = 0; n < maxTokens; n++)
        {
            if (context.Decode(batch) != DecodeResult.Ok) break;
            var logits = context.NativeHandle.GetLogitsIth(batch.TokenCount - 1);
            int best = 0;
            for (int i = 1; i < logits.Length; i++) if (logits[i] > logits[best]) best = i;
            var token = (LLamaToken)best;
            if (token == weights.Vocab.EOS) break;
            decoder.Add(token);
            batch.Clear();
            batch.Add(token, tokens.Count, LLamaSeqId.Zero, true);
            tokens.Add(token);
        }
        return decoder.Read();
    }

    internal static double LogSumExp(ReadOnlySpan<float> values)
    {
        float max = float.NegativeInfinity;
        foreach (var v in values) max = Math.Max(max, v);
        double sum = 0;
        foreach (var v in values) sum += Math.Exp(v - max);
        return max + Math.Log(sum);
    }
}
