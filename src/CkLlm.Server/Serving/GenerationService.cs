using System.Runtime.CompilerServices;
using System.Threading.Channels;
using CkLlm.Engine.Inference;
using CkLlm.Engine.Model;

namespace CkLlm.Server.Serving;

/// <summary>
/// Runs the server's generations. A llama.cpp model is served through its <see cref="BatchedModelRunner"/>
/// (continuous batching: concurrent requests decode together in one context); any other backend through its own
/// <see cref="IChatModel.StreamAsync"/>.
/// </summary>
internal sealed class GenerationService(int slots) : IDisposable
{
    private readonly object _gate = new();
    private readonly Dictionary<LoadedModel, BatchedModelRunner> _runners = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<string, BatchingCounters> _counters = new(StringComparer.OrdinalIgnoreCase);
    private bool _disposed;

    /// <summary>Sequences decoded together per model.</summary>
    public int Slots { get; } = slots;

    /// <summary>The model as the server runs it: a llama.cpp model's completions go through its batch; everything
    /// else (name, tokenizer, chat format) is the model's own. RAG takes this too, so rag/ answers are batched.</summary>
    public IChatModel Serve(IChatModel model) => model is LoadedModel loaded ? new BatchedChatModel(loaded, this) : model;

    private BatchedModelRunner Runner(LoadedModel model)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_runners.TryGetValue(model, out var runner) && !runner.IsFinished) return runner;
            runner?.Dispose();
            if (!_counters.TryGetValue(model.Name, out var counters)) _counters[model.Name] = counters = new BatchingCounters();
            runner = new BatchedModelRunner(model, Slots, counters);
            _runners[model] = runner;
            return runner;
        }
    }

    /// <summary>Each batched model's totals since the server started, by model name.</summary>
    public IReadOnlyList<BatchingStatistics> Statistics
    {
        get
        {
            lock (_gate) return _counters.Select(c => c.Value.Snapshot(c.Key)).OrderBy(s => s.Model, StringComparer.OrdinalIgnoreCase).ToArray();
        }
    }

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

    public void Dispose()
    {
        BatchedModelRunner[] runners;
        lock (_gate)
        {
            _disposed = true;
            runners = _runners.Values.ToArray();
            _runners.Clear();
        }
        foreach (var runner in runners) runner.Dispose();
    }

    /// <summary>A llama.cpp model whose completions run in the server's batch. Not registered anywhere; disposing it
    /// does nothing (the session owns the model).</summary>
    private sealed class BatchedChatModel(LoadedModel model, GenerationService service) : IChatModel
    {
        public string Name => model.Name;
        public int ContextSize => model.ContextSize;
        public bool IsDisposed => model.IsDisposed;
        public IReadOnlyCollection<string> SpecialTokenTexts => model.SpecialTokenTexts;
        public int CountTokens(string prompt) => model.CountTokens(prompt);
        public FormattedPrompt Format(CompletionRequest request) => model.Format(request);

        public IAsyncEnumerable<CompletionChunk> StreamAsync(CompletionRequest request, CancellationToken cancellationToken = default) =>
            service.Runner(model).StreamAsync(request, cancellationToken);

        public void Dispose() { }
    }
}
