using System.Runtime.CompilerServices;
using System.Threading.Channels;
using CkLlm.Engine.Inference;

namespace CkLlm.Server.Serving;

/// <summary>
/// Runs the server's generations. Every backend goes through its <see cref="IChatModel"/> seam.
/// </summary>
internal sealed class GenerationService(int maxParallel) : IDisposable
{
    public int MaxParallel { get; } = maxParallel;

    public IAsyncEnumerable<CompletionChunk> StreamAsync(IChatModel model, CompletionRequest request, CancellationToken cancellationToken) =>
        model.StreamAsync(request, cancellationToken);

    /// <summary>Runs a blocking enumeration (RAG's synchronous pipeline) on its own thread, handing items over as they
    /// come, so no request thread blocks on native decoding.</summary>
    public static async IAsyncEnumerable<T> OffThread<T>(Func<IEnumerable<T>> source, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var channel = Channel.CreateBounded<T>(new BoundedChannelOptions(64) { SingleReader = true, SingleWriter = true });
        var producer = Task.Factory.StartNew(() =>
        {
            try
            {
                foreach (var item in source())
                {
                    if (!channel.Writer.TryWrite(item)) channel.Writer.WriteAsync(item, cancellationToken).AsTask().GetAwaiter().GetResult();
                }
                channel.Writer.TryComplete();
            }
            catch (Exception e)
            {
                channel.Writer.TryComplete(e);
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        await foreach (var item in channel.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false)) yield return item;
        await producer.ConfigureAwait(false);
    }

    public void Dispose() { }
}
