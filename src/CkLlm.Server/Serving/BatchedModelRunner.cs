using System.Diagnostics;
using System.Threading.Channels;
using CkLlm.Engine.Inference;
using CkLlm.Engine.Model;
using LLama;
using LLama.Native;
using LLama.Sampling;

namespace CkLlm.Server.Serving;

/// <summary>
/// Continuous batching for one llama.cpp model: a single context holds <see cref="Slots"/> sequences (each with the
/// model's own context size), one thread decodes every running request's next token in the same llama.cpp batch, and
/// a new request joins at the next step instead of waiting for the others to finish. Prompts are fed in chunks beside
/// the running sequences' tokens, so a long prompt does not stall everyone's stream.
/// </summary>
/// <remarks>The loop thread releases its OpenMP worker threads whenever it goes idle (see
/// <see cref="OpenMpThreadPool"/>): an idle served model must not change how every other decode in the process waits.
/// Generation semantics (chat format, grammar checks before llama.cpp, stop strings, max tokens, finish
/// reasons, the result record) are the same as <see cref="CompletionEngine"/>'s; only the scheduling differs. The
/// runner holds a use lease on the model while it has a context, and frees the context once the model is removed
/// and its last sequence ends.</remarks>
internal sealed class BatchedModelRunner : IDisposable
{
    private readonly LoadedModel _model;
    private readonly Channel<Job> _incoming = Channel.CreateUnbounded<Job>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _shutdown = new();
    private readonly Thread _thread;
    private readonly int _sequenceContext;
    private readonly BatchingCounters _counters;

    public BatchedModelRunner(LoadedModel model, int slots, BatchingCounters counters)
    {
        _model = model;
        Slots = slots;
        _counters = counters;
        _sequenceContext = model.ContextSize;
        _thread = new Thread(Loop) { IsBackground = true, Name = $"CkLlm batch {model.Name}" };
        _thread.Start();
    }

    public int Slots { get; }

    /// <summary>True once the loop ended (the model was removed, or the runner disposed).</summary>
    public bool IsFinished => !_thread.IsAlive;

    /// <summary>Validates and formats the request on the caller's thread (so a bad request is an
    /// <see cref="ArgumentException"/> before anything streams), then queues it.</summary>
    public IAsyncEnumerable<CompletionChunk> StreamAsync(CompletionRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Prompt is null && !request.IsChat) throw new ArgumentException("A completion needs a Prompt or Messages.", nameof(request));
        request.Validate();
        if (request.Grammar is { Length: > 0 } && request.JsonSchema is { Length: > 0 })
            throw new ArgumentException("Give either a Grammar or a JsonSchema, not both.", nameof(request));
        ObjectDisposedException.ThrowIf(_model.IsDisposed, _model);
        var prompt = _model.Format(request);
        var grammar = request.JsonSchema is { Length: > 0 } ? JsonSchemaGrammar.ToGbnf(request.JsonSchema) : request.Grammar;
        if (!string.IsNullOrWhiteSpace(grammar))
        {
            // As CompletionEngine does: llama.cpp must never see a grammar it cannot parse (SIGSEGV in LLamaSharp 0.30).
            GbnfGrammar.Validate(grammar);
            NativeGrammarProbe.Check(_model, grammar);
        }
        var tokens = _model.Tokenize(prompt.Text, addBos: _model.Weights.Vocab.ShouldAddBOS, parseSpecial: true);
        if (tokens.Length == 0) tokens = [_model.Weights.Vocab.BOS is { } bos ? (int)bos : 0];
        if (tokens.Length >= _sequenceContext)
            throw new ArgumentException($"The prompt has {tokens.Length} tokens; the context of model '{_model.Name}' holds {_sequenceContext}.");
        var job = new Job(request, prompt, tokens, string.IsNullOrWhiteSpace(grammar) ? null : grammar, cancellationToken);
        if (!_incoming.Writer.TryWrite(job)) throw new ObjectDisposedException(_model.Name, $"Model '{_model.Name}' is no longer served.");
        return job.Output.Reader.ReadAllAsync(cancellationToken);
    }

    public void Dispose()
    {
        _incoming.Writer.TryComplete();
        _shutdown.Cancel();
        if (Thread.CurrentThread != _thread) _thread.Join(TimeSpan.FromSeconds(10));
        _shutdown.Dispose();
    }

    private sealed record Job(CompletionRequest Request, FormattedPrompt Prompt, int[] Tokens, string? Grammar, CancellationToken Cancellation)
    {
        public Channel<CompletionChunk> Output { get; } = Channel.CreateUnbounded<CompletionChunk>(new UnboundedChannelOptions { SingleWriter = true, SingleReader = true });
    }

    /// <summary>One running request: its sequence in the shared context and its sampling state.</summary>
    private sealed class Sequence(Job job, LLamaSeqId id, LLamaContext context) : IDisposable
    {
        public Job Job { get; } = job;
        public LLamaSeqId Id { get; } = id;
        public DefaultSamplingPipeline Sampler { get; } = new()
        {
            Temperature = job.Request.Temperature,
            TopK = job.Request.TopK,
            TopP = job.Request.TopP,
            MinP = job.Request.MinP,
            RepeatPenalty = job.Request.RepeatPenalty,
            Seed = job.Request.Seed ?? (uint)Random.Shared.Next(),
            Grammar = job.Grammar is null ? null : new Grammar(job.Grammar, "root"),
        };
        public StreamingTokenDecoder Decoder { get; } = new(context);
        public StopMatcher Stops { get; } = new(job.Request.Stop.Concat(job.Prompt.Stops));
        public Stopwatch Total { get; } = Stopwatch.StartNew();
        public Stopwatch PromptClock { get; } = Stopwatch.StartNew();
        public Stopwatch GenerationClock { get; } = new();
        /// <summary>Prompt tokens already in the batch queue.</summary>
        public int PromptFed { get; set; }
        /// <summary>Next position in the sequence.</summary>
        public int Position { get; set; }
        public int Generated { get; set; }
        /// <summary>The sampled token to feed next (after the prompt).</summary>
        public LLamaToken? Pending { get; set; }
        /// <summary>Index of this sequence's logits in the batch just decoded; -1 when it asked for none.</summary>
        public int LogitsIndex { get; set; } = -1;
        public bool PromptDone => PromptFed >= Job.Tokens.Length;

        public void Dispose() => Sampler.Dispose();
    }

    private void Loop()
    {
        IDisposable? use = null;
        LLamaContext? context = null;
        var running = new Sequence?[Slots];
        var waiting = new Queue<Job>();
        try
        {
            use = _model.AcquireUse();
            var parameters = _model.Parameters;
            var contextParams = new LLama.Common.ModelParams(parameters.ModelPath)
            {
                ContextSize = (uint)(_sequenceContext * Slots),
                SeqMax = (uint)Slots,
                BatchSize = parameters.BatchSize,
                UBatchSize = parameters.UBatchSize,
                Threads = parameters.Threads,
                BatchThreads = parameters.BatchThreads,
                FlashAttention = parameters.FlashAttention,
                TypeK = parameters.TypeK,
                TypeV = parameters.TypeV,
            };
            context = _model.Weights.CreateContext(contextParams);
            if (_model.LoraAdapters.Count > 0) context.NativeHandle.SetLoraAdapters(_model.LoraAdapters.Select(a => (a, 1f)).ToArray());
            var batch = new LLamaBatch();
            var batchSize = (int)context.BatchSize;
            var vocab = _model.Weights.Vocab;
            var decodedSinceIdle = false;

            while (true)
            {
                // Take what arrived; block only when nothing runs.
                while (_incoming.Reader.TryRead(out var job)) waiting.Enqueue(job);
                if (running.All(s => s is null) && waiting.Count == 0)
                {
                    if (_model.IsDisposed) break;
                    // Idle: give this thread's OpenMP workers back before blocking (see OpenMpThreadPool).
                    if (decodedSinceIdle) OpenMpThreadPool.ReleaseCallingThreadPool();
                    decodedSinceIdle = false;
                    if (!WaitForWork(waiting)) break;
                }

                var stepStart = Stopwatch.GetTimestamp();
                for (var slot = 0; slot < Slots && waiting.Count > 0; slot++)
                {
                    if (running[slot] is not null) continue;
                    var job = waiting.Dequeue();
                    if (job.Cancellation.IsCancellationRequested) { Finish(job, null, FinishReason.Cancelled); slot--; continue; }
                    running[slot] = new Sequence(job, (LLamaSeqId)slot, context);
                }

                // One batch: every generating sequence's next token first (one each), then prompt chunks in the room left.
                batch.Clear();
                var generating = 0;
                foreach (var sequence in running)
                {
                    if (sequence is null) continue;
                    sequence.LogitsIndex = -1;
                    if (sequence.Job.Cancellation.IsCancellationRequested) continue;
                    if (sequence.Pending is { } token)
                    {
                        sequence.LogitsIndex = batch.TokenCount;
                        batch.Add(token, sequence.Position++, sequence.Id, true);
                        sequence.Pending = null;
                        generating++;
                    }
                }
                foreach (var sequence in running)
                {
                    if (sequence is null || sequence.PromptDone || sequence.Job.Cancellation.IsCancellationRequested) continue;
                    var room = batchSize - batch.TokenCount;
                    if (room <= 0) break;
                    var count = Math.Min(room, sequence.Job.Tokens.Length - sequence.PromptFed);
                    for (var i = 0; i < count; i++)
                    {
                        var last = sequence.PromptFed + 1 == sequence.Job.Tokens.Length;
                        if (last) sequence.LogitsIndex = batch.TokenCount;
                        batch.Add((LLamaToken)sequence.Job.Tokens[sequence.PromptFed], sequence.Position++, sequence.Id, last);
                        sequence.PromptFed++;
                    }
                }

                var decodeStart = Stopwatch.GetTimestamp();
                if (batch.TokenCount > 0)
                {
                    decodedSinceIdle = true;
                    var result = context.Decode(batch);
                    if (result != DecodeResult.Ok) throw new InvalidOperationException($"llama.cpp failed to decode a batch ({result}).");
                }
                var samplingStart = Stopwatch.GetTimestamp();

                for (var slot = 0; slot < Slots; slot++)
                {
                    var sequence = running[slot];
                    if (sequence is null) continue;
                    var finish = Step(sequence, context, vocab);
                    if (finish is null) continue;
                    End(sequence, context, finish.Value);
                    running[slot] = null;
                }
                if (batch.TokenCount > 0)
                    _counters.AddStep(batch.TokenCount, generating, decodeStart - stepStart, samplingStart - decodeStart, Stopwatch.GetTimestamp() - samplingStart);
            }
        }
        catch (Exception e)
        {
            // A native failure ends every request of this model with the error; the server keeps serving others.
            foreach (var sequence in running) sequence?.Job.Output.Writer.TryComplete(e);
            foreach (var job in waiting) job.Output.Writer.TryComplete(e);
            _incoming.Writer.TryComplete();
            while (_incoming.Reader.TryRead(out var job)) job.Output.Writer.TryComplete(e);
        }
        finally
        {
            var stopped = new ObjectDisposedException(_model.Name, $"Model '{_model.Name}' is no longer served.");
            _incoming.Writer.TryComplete();
            foreach (var sequence in running)
            {
                sequence?.Job.Output.Writer.TryComplete(stopped);
                sequence?.Dispose();
            }
            foreach (var job in waiting) job.Output.Writer.TryComplete(stopped);
            while (_incoming.Reader.TryRead(out var job)) job.Output.Writer.TryComplete(stopped);
            context?.Dispose();
            use?.Dispose();
        }
    }

    /// <summary>Blocks until a job arrives (true), or the runner shuts down or the model is removed (false).</summary>
    private bool WaitForWork(Queue<Job> waiting)
    {
        try
        {
            while (true)
            {
                var ready = _incoming.Reader.WaitToReadAsync(_shutdown.Token).AsTask();
                // Wake now and then to notice a removed model (its lease would otherwise pin the weights).
                if (!ready.Wait(TimeSpan.FromSeconds(1)))
                {
                    if (_model.IsDisposed) return false;
                    continue;
                }
                if (!ready.Result) return false;
                while (_incoming.Reader.TryRead(out var job)) waiting.Enqueue(job);
                return true;
            }
        }
        catch (AggregateException e) when (e.InnerException is OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>After a decode: sample this sequence's next token if it asked for logits; null while it goes on.</summary>
    private FinishReason? Step(Sequence sequence, LLamaContext context, SafeLlamaModelHandle.Vocabulary vocab)
    {
        if (sequence.Job.Cancellation.IsCancellationRequested) return FinishReason.Cancelled;
        if (sequence.LogitsIndex < 0) return null; // prompt still being fed
        if (!sequence.GenerationClock.IsRunning)
        {
            sequence.PromptClock.Stop();
            sequence.GenerationClock.Start();
        }
        if (sequence.Generated >= sequence.Job.Request.MaxTokens || sequence.Position >= _sequenceContext) return FinishReason.Length;
        var token = sequence.Sampler.Sample(context.NativeHandle, sequence.LogitsIndex);
        if (token.IsEndOfGeneration(vocab)) return FinishReason.Stop;
        sequence.Generated++;
        sequence.Decoder.Add(token);
        var (emit, stopped) = sequence.Stops.Append(sequence.Decoder.Read());
        if (emit.Length > 0) sequence.Job.Output.Writer.TryWrite(new CompletionChunk(emit, sequence.Generated));
        if (stopped) return FinishReason.Stop;
        // The last allowed token needs no decode: nothing will be sampled after it.
        if (sequence.Generated >= sequence.Job.Request.MaxTokens) return FinishReason.Length;
        sequence.Pending = token;
        return null;
    }

    private void End(Sequence sequence, LLamaContext context, FinishReason finish)
    {
        sequence.GenerationClock.Stop();
        sequence.Total.Stop();
        var rest = sequence.Stops.Flush();
        var writer = sequence.Job.Output.Writer;
        if (rest.Length > 0) writer.TryWrite(new CompletionChunk(rest, sequence.Generated));
        writer.TryWrite(new CompletionChunk(string.Empty, sequence.Generated, new CompletionResult
        {
            Model = _model.Name,
            Prompt = sequence.Job.Prompt.Text,
            Text = sequence.Stops.Text,
            PromptTokens = sequence.Job.Tokens.Length,
            CompletionTokens = sequence.Generated,
            TokensPerSecond = Rate(sequence.Generated, sequence.GenerationClock.Elapsed),
            PromptTokensPerSecond = Rate(sequence.PromptFed, sequence.PromptClock.Elapsed),
            FinishReason = finish,
            ChatFormat = sequence.Job.Prompt.Format,
            Duration = sequence.Total.Elapsed,
        }));
        writer.TryComplete();
        // Free the sequence's cells for the next request in this slot.
        context.NativeHandle.MemorySequenceRemove(sequence.Id, -1, -1);
        sequence.Dispose();
    }

    private void Finish(Job job, CompletionResult? result, FinishReason finish)
    {
        job.Output.Writer.TryWrite(new CompletionChunk(string.Empty, 0, result ?? new CompletionResult
        {
            Model = _model.Name,
            Prompt = job.Prompt.Text,
            Text = string.Empty,
            PromptTokens = job.Tokens.Length,
            CompletionTokens = 0,
            TokensPerSecond = 0,
            PromptTokensPerSecond = 0,
            FinishReason = finish,
            ChatFormat = job.Prompt.Format,
            Duration = TimeSpan.Zero,
        }));
        job.Output.Writer.TryComplete();
    }

    private static double Rate(int tokens, TimeSpan elapsed) =>
        tokens == 0 || elapsed <= TimeSpan.Zero ? 0 : tokens / elapsed.TotalSeconds;
}
