using System.Diagnostics;
using CkLlm.Engine.Inference;
using CkLlm.Engine.Model.Gguf;
using LLama;
using LLama.Common;
using LLama.Native;

namespace CkLlm.Engine.Model;

/// <summary>How to load a model. Null members take the defaults noted on each.</summary>
public sealed record ModelLoadOptions
{
    /// <summary>Session name; default: the file name without extension.</summary>
    public string? Name { get; init; }

    /// <summary>Context window in tokens per completion; default: the model's trained length capped at 4096.</summary>
    public int? ContextSize { get; init; }

    /// <summary>CPU threads; default: the number of logical processors.</summary>
    public int? Threads { get; init; }

    /// <summary>Layers offloaded to a GPU (the CPU backend ignores it).</summary>
    public int GpuLayerCount { get; init; }

    /// <summary>LoRA adapter GGUF files, applied with scale 1 to every completion.</summary>
    public IReadOnlyList<string> Adapters { get; init; } = [];

    /// <summary>Idle contexts kept for the prompt-prefix cache of single calls (each holds a KV cache of ContextSize
    /// tokens); default 1, 0 disables the cache.</summary>
    public int? PromptCacheContexts { get; init; }
}

/// <summary>
/// A GGUF model loaded into llama.cpp (memory-mapped): the local <see cref="IChatModel"/>. It is only loaded after
/// <see cref="GgufValidator"/> accepted the file, because malformed GGUFs abort the process inside llama.cpp. Dispose
/// frees the native memory (deferred while a completion runs).
/// </summary>
public sealed class LoadedModel : IChatModel
{
    private const int DefaultMaxContext = 4096;
    private readonly LLamaWeights _weights;
    private readonly LoraAdapter[] _loraAdapters;
    private readonly HashSet<KeptChatSequence> _sequences = new(ReferenceEqualityComparer.Instance);
    private int _disposed;
    private int _activeUses;
    private int _freed;

    private LoadedModel(GgufModelSummary summary, string name, LLamaWeights weights, ModelParams parameters,
        LoraAdapter[] adapters, TimeSpan loadTime, int promptCacheContexts)
    {
        PromptCache = new PromptCachePool(promptCacheContexts);
        Summary = summary;
        Name = name;
        _weights = weights;
        Parameters = parameters;
        _loraAdapters = adapters;
        LoadTime = loadTime;
        Adapters = adapters.Select(a => a.Path).ToArray();
    }

    /// <summary>Validates then loads <paramref name="path"/>.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="GgufFormatException">The file is not a usable GGUF model (validator or llama.cpp said so).</exception>
    public static LoadedModel Load(string path, ModelLoadOptions? options = null)
    {
        options ??= new ModelLoadOptions();
        var fullPath = System.IO.Path.GetFullPath(path);
        var summary = GgufValidator.Validate(fullPath);
        foreach (var adapter in options.Adapters) ValidateAdapter(System.IO.Path.GetFullPath(adapter), summary);
        if (options.ContextSize is < 0) throw new ArgumentOutOfRangeException(nameof(options), "ContextSize must not be negative.");
        if (options.Threads is < 1) throw new ArgumentOutOfRangeException(nameof(options), "Threads must be at least 1.");
        if (options.PromptCacheContexts is < 0) throw new ArgumentOutOfRangeException(nameof(options), "PromptCacheContexts must not be negative.");

        NativeBackend.EnsureInitialized();
        var contextSize = options.ContextSize is > 0 ? options.ContextSize.Value
            : Math.Min(summary.ContextLength > 0 ? summary.ContextLength : DefaultMaxContext, DefaultMaxContext);
        var threads = options.Threads ?? Environment.ProcessorCount;
        var parameters = new ModelParams(fullPath)
        {
            ContextSize = (uint)contextSize,
            Threads = threads,
            BatchThreads = threads,
            GpuLayerCount = options.GpuLayerCount,
            LoadMode = LLamaLoadMode.MemoryMap,
        };

        var clock = Stopwatch.StartNew();
        LLamaWeights weights;
        try { weights = LLamaWeights.LoadFromFile(parameters); }
        catch (LLama.Exceptions.LoadWeightsFailedException e)
        {
            throw new GgufFormatException(fullPath, $"llama.cpp could not load it ({e.Message}).");
        }

        var adapters = new List<LoraAdapter>();
        try
        {
            foreach (var adapterPath in options.Adapters)
            {
                var adapterFull = System.IO.Path.GetFullPath(adapterPath);
                try { adapters.Add(weights.NativeHandle.LoadLoraFromFile(adapterFull)); }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    throw new GgufFormatException(adapterFull, $"llama.cpp could not load it as a LoRA adapter for this model ({e.Message}).");
                }
            }
        }
        catch
        {
            weights.Dispose();
            throw;
        }
        clock.Stop();

        var name = string.IsNullOrWhiteSpace(options.Name) ? System.IO.Path.GetFileNameWithoutExtension(fullPath) : options.Name!;
        return new LoadedModel(summary, name, weights, parameters, adapters.ToArray(), clock.Elapsed, options.PromptCacheContexts ?? 1);
    }

    /// <summary>
    /// Checks a LoRA adapter's GGUF structure in managed code (llama.cpp aborts on malformed files here too) and that it
    /// declares itself a LoRA adapter for the base model's architecture.
    /// </summary>
    internal static void ValidateAdapter(string path, GgufModelSummary model)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"LoRA adapter '{path}' does not exist.", path);
        var file = GgufReader.Read(path);
        var type = file.GetStringOrNull("general.type");
        if (type != "adapter" || file.GetStringOrNull("adapter.type") != "lora")
            throw new GgufFormatException(path, $"it is not a LoRA adapter (general.type is '{type ?? "missing"}', adapter.type must be 'lora').");
        var architecture = file.GetStringOrNull("general.architecture");
        if (architecture != model.Architecture)
            throw new GgufFormatException(path, $"the adapter is for architecture '{architecture ?? "missing"}', the model is '{model.Architecture}'.");
        if (file.Tensors.Count == 0 || file.Tensors.Any(t => !t.Name.EndsWith(".lora_a", StringComparison.Ordinal) && !t.Name.EndsWith(".lora_b", StringComparison.Ordinal)))
            throw new GgufFormatException(path, "a LoRA adapter must hold only '<tensor>.lora_a' / '<tensor>.lora_b' tensors.");
    }

    /// <summary>What the validator read from the file.</summary>
    public GgufModelSummary Summary { get; }

    public string Name { get; }
    public string Path => Summary.Path;
    public string Architecture => Summary.Architecture;
    public long ParameterCount => Summary.ParameterCount;
    /// <summary>The context length the model was trained for.</summary>
    public int ContextLength => Summary.ContextLength;
    public int VocabularySize => Summary.VocabularySize;
    public long FileSize => Summary.FileSize;
    public bool HasChatTemplate => Summary.HasChatTemplate;
    public string? ChatTemplate => Summary.ChatTemplate;
    public TimeSpan LoadTime { get; }
    public DateTimeOffset Loaded { get; } = DateTimeOffset.Now;

    /// <summary>The context window each completion gets.</summary>
    public int ContextSize => (int)(Parameters.ContextSize ?? 0);
    public int Threads => Parameters.Threads ?? Environment.ProcessorCount;
    public int GpuLayerCount => Parameters.GpuLayerCount;
    /// <summary>Full paths of the LoRA adapters applied to every completion.</summary>
    public IReadOnlyList<string> Adapters { get; }

    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    internal ModelParams Parameters { get; }

    internal LLamaWeights Weights
    {
        get
        {
            if (Volatile.Read(ref _freed) != 0) throw new ObjectDisposedException(Name, $"Model '{Name}' has been removed.");
            return _weights;
        }
    }

    internal IReadOnlyList<LoraAdapter> LoraAdapters => _loraAdapters;

    /// <summary>The prompt-prefix cache of single calls (see <see cref="PromptCachePool"/>).</summary>
    internal PromptCachePool PromptCache { get; }

    /// <summary>Tokens the prompt cache holds for later calls.</summary>
    public int CachedPromptTokens => PromptCache.CachedTokens;

    /// <summary>Whether llama.cpp's handle is released (for tests proving Remove frees native memory).</summary>
    internal bool NativeHandleClosed => _weights.NativeHandle.IsClosed;

    /// <summary>Token ids of <paramref name="text"/> with the model's own tokenizer.</summary>
    /// <param name="addBos">Prepend the beginning-of-sequence token (as a prompt would have).</param>
    /// <param name="parseSpecial">Turn special-token text (e.g. "&lt;s&gt;") into special tokens.</param>
    public int[] Tokenize(string text, bool addBos = false, bool parseSpecial = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        using var use = AcquireUse();
        var tokens = Weights.NativeHandle.Tokenize(text, addBos, parseSpecial, System.Text.Encoding.UTF8);
        var ids = new int[tokens.Length];
        for (var i = 0; i < tokens.Length; i++) ids[i] = (int)tokens[i];
        return ids;
    }

    /// <summary>How many tokens <paramref name="text"/> takes (no BOS unless asked).</summary>
    public int CountTokens(string text, bool addBos = false) => Tokenize(text, addBos).Length;

    /// <summary>The text of token ids (special tokens are left out).</summary>
    public string Detokenize(IEnumerable<int> tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        using var use = AcquireUse();
        var decoder = new StreamingTokenDecoder(System.Text.Encoding.UTF8, Weights);
        foreach (var token in tokens) decoder.Add(token);
        return decoder.Read();
    }

    /// <summary>As a prompt is tokenised: BOS always counted and special-token text parsed as the completion engine
    /// does, so at worst one token too many.</summary>
    int IChatModel.CountTokens(string prompt) => Tokenize(prompt, addBos: true, parseSpecial: true).Length;

    /// <summary>The model's own chat template through llama.cpp, or the documented fallback (see <see cref="ChatFormatter"/>).</summary>
    public FormattedPrompt Format(CompletionRequest request) => ChatFormatter.Format(this, request);

    /// <summary>Read from the vocabulary: every token marked control, user-defined or unknown.</summary>
    public IReadOnlyCollection<string> SpecialTokenTexts => Rag.ModelControlTokens.Texts(this);

    /// <summary>Decodes on a dedicated worker thread (see <see cref="CompletionEngine"/>).</summary>
    public IEnumerable<CompletionChunk> Stream(CompletionRequest request, CancellationToken cancellationToken = default) =>
        CompletionEngine.Stream(this, request, cancellationToken);

    public IAsyncEnumerable<CompletionChunk> StreamAsync(CompletionRequest request, CancellationToken cancellationToken = default) =>
        CompletionEngine.StreamAsync(this, request, cancellationToken);

    /// <summary>A conversation with a llama.cpp context of its own, kept between turns (freed by its Dispose or with
    /// this model).</summary>
    public IChatSequence OpenSequence()
    {
        using var use = AcquireUse();
        var sequence = new KeptChatSequence(this);
        lock (_sequences) _sequences.Add(sequence);
        return sequence;
    }

    internal void ForgetSequence(KeptChatSequence sequence)
    {
        lock (_sequences) _sequences.Remove(sequence);
    }

    public override string ToString() => $"{Name} ({Architecture}, {ParameterCount:N0} parameters)";

    /// <summary>
    /// Marks the model as in use by a completion so a concurrent Dispose (Remove-CkModel in another runspace) defers
    /// freeing the native memory until the completion ends instead of pulling it from under llama.cpp.
    /// </summary>
    internal IDisposable AcquireUse()
    {
        Interlocked.Increment(ref _activeUses);
        if (IsDisposed)
        {
            ReleaseUse();
            throw new ObjectDisposedException(Name, $"Model '{Name}' has been removed.");
        }
        return new UseLease(this);
    }

    private void ReleaseUse()
    {
        if (Interlocked.Decrement(ref _activeUses) == 0 && IsDisposed) FreeNative();
    }

    private void FreeNative()
    {
        if (Interlocked.Exchange(ref _freed, 1) != 0) return;
        // Contexts first: each holds a reference on the weights, which would otherwise stay mapped.
        PromptCache.Dispose();
        KeptChatSequence[] sequences;
        lock (_sequences) sequences = _sequences.ToArray();
        foreach (var sequence in sequences) sequence.Dispose();
        foreach (var adapter in _loraAdapters) adapter.Unload();
        _weights.Dispose();
    }

    /// <summary>Frees llama.cpp's memory now, or when the last running completion on this model ends.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        if (Volatile.Read(ref _activeUses) == 0) FreeNative();
    }

    private sealed class UseLease(LoadedModel model) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0) model.ReleaseUse();
        }
    }
}
