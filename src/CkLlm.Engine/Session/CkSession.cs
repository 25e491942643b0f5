namespace CkLlm.Engine.Session;

/// <summary>
/// The process-wide state the cmdlets share: loaded models by name, the current model and the current knowledge
/// base. Every runspace in the process (ForEach-Object -Parallel, Import-Module -Force) sees the same instance, so
/// all members are thread-safe.
/// </summary>
public sealed partial class CkSession : IDisposable
{
    private static readonly object Gate = new();
    private static CkSession? _current;

    public static CkSession Current
    {
        get { lock (Gate) return _current ??= new CkSession(); }
    }

    /// <summary>Disposes the process-wide session (on Remove-Module) so native memory is freed.</summary>
    public static void Reset()
    {
        CkSession? old;
        lock (Gate) { old = _current; _current = null; }
        old?.Dispose();
        // The embedder cache is process-wide like this session; a session instance's own Dispose must not free
        // embedders other sessions and knowledge bases are still using (that was a use-after-dispose in ONNX Runtime).
        Knowledge.Embedding.EmbedderRegistry.Clear();
        Knowledge.Search.RerankerRegistry.Clear();
    }

    public DateTimeOffset Created { get; } = DateTimeOffset.Now;

    private volatile bool _disposed;

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        DisposeModels();
        DisposeKnowledge();
    }
}
