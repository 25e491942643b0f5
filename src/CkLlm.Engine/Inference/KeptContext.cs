using CkLlm.Engine.Model;
using LLama;
using LLama.Native;

namespace CkLlm.Engine.Inference;

/// <summary>
/// A llama.cpp context kept between completions, with the tokens its sequence 0 holds in the KV cache (positions
/// 0..Count-1). A completion over a prompt that starts with some of those tokens evaluates only the rest: a chat's
/// memory between turns, and the prompt-prefix cache of single calls. Not thread-safe: one completion at a time.
/// </summary>
internal sealed class KeptContext : IDisposable
{
    private static readonly LLamaSeqId Sequence = LLamaSeqId.Zero;
    private readonly List<LLamaToken> _tokens = [];

    private KeptContext(LLamaContext context) => Context = context;

    /// <summary>A new empty context for <paramref name="model"/> with its LoRA adapters applied.</summary>
    /// <remarks>The caller holds a use lease on the model (see <see cref="LoadedModel.AcquireUse"/>).</remarks>
    public static KeptContext Create(LoadedModel model)
    {
        var context = model.Weights.CreateContext(model.Parameters);
        if (model.LoraAdapters.Count > 0)
            context.NativeHandle.SetLoraAdapters(model.LoraAdapters.Select(a => (a, 1f)).ToArray());
        return new KeptContext(context);
    }

    public LLamaContext Context { get; }

    /// <summary>Tokens in the KV cache, in position order.</summary>
    public IReadOnlyList<LLamaToken> Tokens => _tokens;

    public bool IsDisposed { get; private set; }

    /// <summary>When the context last served a completion (the pool evicts the oldest).</summary>
    public long LastUsedTicks { get; private set; } = Environment.TickCount64;

    /// <summary>How many leading tokens of <paramref name="prompt"/> the cache already holds.</summary>
    public int CommonPrefix(IReadOnlyList<LLamaToken> prompt)
    {
        var limit = Math.Min(prompt.Count, _tokens.Count);
        var i = 0;
        while (i < limit && _tokens[i] == prompt[i]) i++;
        return i;
    }

    /// <summary>
    /// Keeps the longest cached prefix of <paramref name="prompt"/> and drops every later position from the KV cache.
    /// Returns how many prompt tokens need no evaluation. At least the last prompt token is always left to evaluate,
    /// because sampling needs its logits.
    /// </summary>
    public int KeepPrefixOf(IReadOnlyList<LLamaToken> prompt)
    {
        LastUsedTicks = Environment.TickCount64;
        var keep = Math.Min(CommonPrefix(prompt), prompt.Count - 1);
        if (keep <= 0)
        {
            Clear();
            return 0;
        }
        if (keep < _tokens.Count)
        {
            var handle = Context.NativeHandle;
            handle.MemorySequenceRemove(Sequence, keep, -1);
            // Recurrent models cannot drop a suffix, and a sliding-window cache may have evicted early positions: in
            // both cases the cache no longer matches the kept tokens exactly, so start over rather than reuse it.
            if ((int)handle.MemorySequenceMaxPosition(Sequence) != keep - 1 || (int)handle.MemorySequenceMinPosition(Sequence) > 0)
            {
                Clear();
                return 0;
            }
            _tokens.RemoveRange(keep, _tokens.Count - keep);
        }
        return keep;
    }

    /// <summary>Records tokens just decoded at the next positions.</summary>
    public void Append(LLamaToken token) => _tokens.Add(token);

    /// <summary>Empties the KV cache (after a failed decode its content is unknown).</summary>
    public void Clear()
    {
        if (IsDisposed) return;
        Context.NativeHandle.MemoryClear();
        _tokens.Clear();
    }

    public void Dispose()
    {
        if (IsDisposed) return;
        IsDisposed = true;
        _tokens.Clear();
        Context.Dispose();
    }
}

/// <summary>
/// The prompt-prefix cache of one model's single calls (llama.cpp's server does the same with its slots): up to
/// <see cref="Capacity"/> idle contexts keep the tokens of recent calls; a new call takes the idle context sharing the
/// longest prefix with its prompt (or a new one) and evaluates only the rest. Memory stays bounded by the capacity;
/// concurrent calls each get their own context.
/// </summary>
internal sealed class PromptCachePool(int capacity) : IDisposable
{
    private readonly object _gate = new();
    private readonly List<KeptContext> _idle = [];
    private bool _disposed;

    /// <summary>Idle contexts kept at most (0 disables the cache: every call gets a fresh context).</summary>
    public int Capacity { get; } = Math.Max(0, capacity);

    /// <summary>Tokens cached across the idle contexts (for Get-CkModel style reporting and tests).</summary>
    public int CachedTokens
    {
        get { lock (_gate) return _idle.Sum(c => c.Tokens.Count); }
    }

    /// <summary>The idle context sharing the longest prefix with <paramref name="prompt"/>, or a new one.</summary>
    public KeptContext Rent(LoadedModel model, IReadOnlyList<LLamaToken> prompt)
    {
        lock (_gate)
        {
            KeptContext? best = null;
            var bestLength = -1;
            foreach (var candidate in _idle)
            {
                var length = candidate.CommonPrefix(prompt);
                if (length > bestLength) { best = candidate; bestLength = length; }
            }
            if (best is not null)
            {
                _idle.Remove(best);
                return best;
            }
        }
        return KeptContext.Create(model);
    }

    /// <summary>Keeps <paramref name="context"/> for later calls, evicting the least recently used beyond capacity.</summary>
    public void Return(KeptContext context)
    {
        KeptContext? evicted = null;
        lock (_gate)
        {
            if (_disposed || Capacity == 0 || context.IsDisposed)
            {
                evicted = context;
            }
            else
            {
                _idle.Add(context);
                if (_idle.Count > Capacity)
                {
                    evicted = _idle.MinBy(c => c.LastUsedTicks);
                    _idle.Remove(evicted!);
                }
            }
        }
        evicted?.Dispose();
    }

    /// <summary>Frees every idle context (the model is being freed).</summary>
    public void Dispose()
    {
        KeptContext[] idle;
        lock (_gate)
        {
            _disposed = true;
            idle = _idle.ToArray();
            _idle.Clear();
        }
        foreach (var context in idle) context.Dispose();
    }
}
