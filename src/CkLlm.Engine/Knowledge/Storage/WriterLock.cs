using System.Diagnostics;

namespace CkLlm.Engine.Knowledge.Storage;

/// <summary>
/// One writer per knowledge base across processes: an exclusive lock on <c>writer.lock</c> (flock on Linux, released
/// by the kernel when the process dies, so kill -9 leaves no stale lock). A second writer waits up to the timeout and
/// then gets <see cref="KnowledgeBaseBusyException"/> naming the holder. Readers never take it.
/// </summary>
internal sealed class WriterLock : IDisposable
{
    private readonly FileStream _stream;

    private WriterLock(FileStream stream) => _stream = stream;

    public static WriterLock Acquire(string directory, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var path = Path.Combine(directory, "writer.lock");
        var holderPath = Path.Combine(directory, "writer.pid");
        var watch = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                try { File.WriteAllText(holderPath, $"{Environment.ProcessId}"); } catch (IOException) { }
                return new WriterLock(stream);
            }
            catch (IOException) when (watch.Elapsed < timeout)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Thread.Sleep(50);
            }
            catch (IOException ex)
            {
                string holder = "another process";
                try { holder = "process " + File.ReadAllText(holderPath).Trim(); } catch (IOException) { }
                throw new KnowledgeBaseBusyException(
                    $"The knowledge base '{directory}' is being written by {holder}; gave up after waiting {timeout.TotalSeconds:0.#} s. " +
                    $"Searches still work; retry the write when the other writer has finished. ({ex.Message})");
            }
        }
    }

    public void Dispose() => _stream.Dispose();
}
