namespace CkLlm.Server.Serving;

/// <summary>
/// Bounds the generations a server runs and holds: up to <see cref="MaxActive"/> run at once, up to
/// <see cref="MaxQueued"/> more wait their turn, and anything beyond is refused at once (503) instead of piling up.
/// </summary>
internal sealed class AdmissionQueue(int maxActive, int maxQueued) : IDisposable
{
    private readonly SemaphoreSlim _slots = new(maxActive, maxActive);
    private int _admitted;

    public int MaxActive { get; } = maxActive;
    public int MaxQueued { get; } = maxQueued;

    /// <summary>Requests admitted and not yet finished (running plus waiting).</summary>
    public int Admitted => Volatile.Read(ref _admitted);

    /// <summary>A slot, once one is free; null when the queue is full (the caller answers 503).</summary>
    public async Task<IDisposable?> TryEnterAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Increment(ref _admitted) > MaxActive + MaxQueued)
        {
            Interlocked.Decrement(ref _admitted);
            return null;
        }
        try
        {
            await _slots.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            Interlocked.Decrement(ref _admitted);
            throw;
        }
        return new Slot(this);
    }

    public void Dispose() => _slots.Dispose();

    private sealed class Slot(AdmissionQueue queue) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) != 0) return;
            queue._slots.Release();
            Interlocked.Decrement(ref queue._admitted);
        }
    }
}
