using System.Runtime.ExceptionServices;

namespace CkLlm.Engine.Inference;

/// <summary>
/// Runs an enumeration on a dedicated worker thread, handing each item to the caller before producing the next
/// (a rendezvous, so cancellation between items keeps its meaning). Why: llama.cpp decoding called directly from a
/// PowerShell pipeline thread measured 3-10x slower here than from a .NET worker thread, while LLamaSharp's own
/// executors decode on worker threads.
/// </summary>
internal static class WorkerThread
{
    public static IEnumerable<T> Enumerate<T>(IEnumerable<T> source, string name)
    {
        // Kernel events, not SemaphoreSlim: the waiting side must not spin, on 2 cores a spinning waiter competes with
        // ggml's own spin-waiting compute threads.
        using var ready = new AutoResetEvent(false);
        using var consumed = new AutoResetEvent(false);
        T current = default!;
        var done = false;
        var abandoned = false;
        ExceptionDispatchInfo? failure = null;

        var worker = new Thread(() =>
        {
            try
            {
                using var items = source.GetEnumerator();
                while (true)
                {
                    bool hasItem;
                    try { hasItem = items.MoveNext(); }
                    catch (Exception e) { failure = ExceptionDispatchInfo.Capture(e); break; }
                    if (!hasItem) break;
                    current = items.Current;
                    ready.Set();
                    consumed.WaitOne();
                    if (Volatile.Read(ref abandoned)) break;
                }
            }
            catch (Exception e) { failure ??= ExceptionDispatchInfo.Capture(e); }
            finally
            {
                Volatile.Write(ref done, true);
                ready.Set();
            }
        })
        { IsBackground = true, Name = name };
        worker.Start();

        try
        {
            while (true)
            {
                ready.WaitOne();
                if (Volatile.Read(ref done))
                {
                    failure?.Throw();
                    yield break;
                }
                yield return current;
                consumed.Set();
            }
        }
        finally
        {
            if (!Volatile.Read(ref done))
            {
                // The caller stopped early: let the worker dispose the source (and its llama.cpp context) and end.
                Volatile.Write(ref abandoned, true);
                consumed.Set();
            }
            worker.Join();
        }
    }
}
