using CkLlm.Engine.Model;

namespace CkLlm.Engine.Inference;

/// <summary>
/// A conversation's state on a model: successive completions whose prompts grow by appending (a chat's turns). A
/// backend that can keep its evaluated prompt (llama.cpp's KV cache) between completions evaluates only what is new;
/// results report it in <see cref="CompletionResult.CachedPromptTokens"/>. One completion at a time.
/// </summary>
public interface IChatSequence : IDisposable
{
    /// <summary>Streams the completion of <paramref name="request"/>, reusing whatever this sequence kept of its prompt.</summary>
    IEnumerable<CompletionChunk> Stream(CompletionRequest request, CancellationToken cancellationToken = default);

    /// <summary>Tokens this sequence holds evaluated (0 for a backend that keeps nothing).</summary>
    int KeptTokens { get; }

    /// <summary>True when it keeps state between completions (false: every completion sends the whole prompt).</summary>
    bool KeepsState { get; }
}

/// <summary>A sequence that keeps nothing: every completion is a plain call of the model (a remote backend).</summary>
public sealed class StatelessChatSequence(IChatModel model) : IChatSequence
{
    public IEnumerable<CompletionChunk> Stream(CompletionRequest request, CancellationToken cancellationToken = default) =>
        model.Stream(request, cancellationToken);

    public int KeptTokens => 0;
    public bool KeepsState => false;

    public void Dispose() { }
}

/// <summary>
/// A llama.cpp sequence of its own: one context kept for the conversation's whole life, so a turn evaluates only the
/// tokens after the longest prefix it shares with the previous prompt and reply. Freed by Dispose, or with its model.
/// </summary>
internal sealed class KeptChatSequence : IChatSequence
{
    private readonly LoadedModel _model;
    private readonly object _gate = new();
    private KeptContext? _context;
    private bool _disposed;

    public KeptChatSequence(LoadedModel model) => _model = model;

    public IEnumerable<CompletionChunk> Stream(CompletionRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!request.CachePrompt) return CompletionEngine.Stream(_model, request, cancellationToken);
        return Run(request, cancellationToken);
    }

    private IEnumerable<CompletionChunk> Run(CompletionRequest request, CancellationToken cancellationToken)
    {
        KeptContext context;
        using (_model.AcquireUse())
        {
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                context = _context ??= KeptContext.Create(_model);
            }
        }
        // The completion takes its own use lease; the model frees this context (see Release) only once no use is left.
        foreach (var chunk in CompletionEngine.Stream(_model, request, context, cancellationToken)) yield return chunk;
    }

    public int KeptTokens
    {
        get { lock (_gate) return _context?.Tokens.Count ?? 0; }
    }

    public bool KeepsState => true;

    /// <summary>Frees the native context (the model is being freed, or the chat removed).</summary>
    public void Dispose()
    {
        KeptContext? context;
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            context = _context;
            _context = null;
        }
        _model.ForgetSequence(this);
        context?.Dispose();
    }
}
