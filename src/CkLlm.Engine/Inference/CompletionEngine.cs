using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;
using CkLlm.Engine.Model;
using LLama;
using LLama.Native;
using LLama.Sampling;

namespace CkLlm.Engine.Inference;

/// <summary>
/// Runs completions on a <see cref="LoadedModel"/>. Every call has a llama.cpp context (KV cache) of its own while it
/// runs, so several may run at once on one model: a chat's kept context, or one borrowed from the model's prompt
/// cache (<see cref="PromptCachePool"/>), which keeps the tokens of recent calls so a prompt sharing their prefix
/// evaluates only the rest. What a cache holds never changes the text, only the time to the first token.
/// </summary>
public static class CompletionEngine
{
    /// <summary>
    /// Streams text as it is generated; the last chunk carries the result. Decoding runs on a worker thread, one chunk
    /// ahead at most: the caller's thread only receives chunks (see <see cref="WorkerThread"/>).
    /// </summary>
    /// <remarks>Cancellation is checked before every token: it ends the stream with FinishReason Cancelled, no exception.
    /// With <see cref="CompletionRequest.CachePrompt"/> the call reuses the longest matching prompt prefix of a recent call
    /// on the same model (<see cref="CompletionResult.CachedPromptTokens"/>); the text is the same either way.</remarks>
    public static IEnumerable<CompletionChunk> Stream(LoadedModel model, CompletionRequest request, CancellationToken cancellationToken = default) =>
        Stream(model, request, kept: null, cancellationToken);

    /// <summary>As <see cref="Stream(LoadedModel, CompletionRequest, CancellationToken)"/>, on <paramref name="kept"/>
    /// (a chat's own context) when given, else on a context of the model's prompt cache.</summary>
    internal static IEnumerable<CompletionChunk> Stream(LoadedModel model, CompletionRequest request, KeptContext? kept, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(request);
        Validate(request);
        var (promptText, chatFormat, extraStops) = ChatFormatter.Format(model, request);
        var grammar = request.JsonSchema is { Length: > 0 } ? JsonSchemaGrammar.ToGbnf(request.JsonSchema) : request.Grammar;
        if (!string.IsNullOrWhiteSpace(grammar))
        {
            // Checked before LLamaSharp sees it: a grammar llama.cpp rejects would crash the process (see GbnfGrammar).
            GbnfGrammar.Validate(grammar);
            NativeGrammarProbe.Check(model, grammar);
        }
        return WorkerThread.Enumerate(Run(model, request, promptText, chatFormat, extraStops, grammar, kept, cancellationToken), "CkLlm completion");
    }

    /// <summary>Streams on a thread-pool thread (native decoding blocks).</summary>
    public static async IAsyncEnumerable<CompletionChunk> StreamAsync(LoadedModel model, CompletionRequest request,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var chunks = Stream(model, request, cancellationToken);
        await Task.Yield();
        using var enumerator = chunks.GetEnumerator();
        while (true)
        {
            // Each token is produced off the caller's thread; the await keeps async callers responsive.
            var hasNext = await Task.Run(enumerator.MoveNext, CancellationToken.None).ConfigureAwait(false);
            if (!hasNext) yield break;
            yield return enumerator.Current;
        }
    }

    /// <summary>Completes synchronously; <paramref name="onText"/> (optional) receives each piece of text as it arrives.</summary>
    public static CompletionResult Complete(LoadedModel model, CompletionRequest request, CancellationToken cancellationToken = default,
        Action<string>? onText = null)
    {
        foreach (var chunk in Stream(model, request, cancellationToken))
        {
            if (chunk.Result is not null) return chunk.Result;
            onText?.Invoke(chunk.Text);
        }
        throw new InvalidOperationException("The completion ended without a result.");
    }

    /// <summary>Completes on a thread-pool thread.</summary>
    public static Task<CompletionResult> CompleteAsync(LoadedModel model, CompletionRequest request,
        CancellationToken cancellationToken = default, Action<string>? onText = null) =>
        Task.Run(() => Complete(model, request, cancellationToken, onText), CancellationToken.None);

    private static void Validate(CompletionRequest request)
    {
        if (request.Prompt is null && !request.IsChat)
            throw new ArgumentException("A completion needs a Prompt or Messages.", nameof(request));
        request.Validate();
        if (request.Grammar is { Length: > 0 } && request.JsonSchema is { Length: > 0 })
            throw new ArgumentException("Give either a Grammar or a JsonSchema, not both.", nameof(request));
    }

    private static IEnumerable<CompletionChunk> Run(LoadedModel model, CompletionRequest request, string promptText,
        string chatFormat, IReadOnlyList<string> extraStops, string? grammar, KeptContext? chatContext, CancellationToken cancellationToken)
    {
        var total = Stopwatch.StartNew();
        using var use = model.AcquireUse();
        var weights = model.Weights;
        var vocab = weights.Vocab;
        var promptTokens = weights.Tokenize(promptText, vocab.ShouldAddBOS, true, Encoding.UTF8);
        if (promptTokens.Length == 0) promptTokens = [vocab.BOS ?? default];

        // A chat brings its own context; a single call borrows one from the model's prompt cache (or a fresh one).
        var kept = chatContext ?? (request.CachePrompt ? model.PromptCache.Rent(model, promptTokens) : KeptContext.Create(model));
        var decoding = false;
        try
        {
            var context = kept.Context;
            if (promptTokens.Length >= context.ContextSize)
                throw new ArgumentException($"The prompt has {promptTokens.Length} tokens; the context of model '{model.Name}' holds {context.ContextSize}. Shorten it or import the model with a larger -ContextSize.");

            using var sampler = CreateSampler(request, grammar);
            var stops = new StopMatcher(request.Stop.Concat(extraStops));
            var decoder = new StreamingTokenDecoder(context);
            var batch = new LLamaBatch();

            // Prompt processing, in batches the context accepts, after the prefix the kept cache already holds;
            // cancellation is honoured between batches.
            var promptClock = Stopwatch.StartNew();
            var cached = kept.KeepPrefixOf(promptTokens);
            var position = cached;
            var batchSize = (int)context.BatchSize;
            var cancelled = false;
            while (position < promptTokens.Length)
            {
                if (cancellationToken.IsCancellationRequested) { cancelled = true; break; }
                var count = Math.Min(batchSize, promptTokens.Length - position);
                batch.Clear();
                for (var i = 0; i < count; i++)
                    batch.Add(promptTokens[position + i], position + i, LLamaSeqId.Zero, position + i == promptTokens.Length - 1);
                decoding = true;
                CheckDecode(context.Decode(batch));
                for (var i = 0; i < count; i++) kept.Append(promptTokens[position + i]);
                decoding = false;
                position += count;
            }
            promptClock.Stop();
            var evaluated = position - cached;

            var generated = 0;
            TimeSpan? firstToken = null;
            var finish = cancelled ? FinishReason.Cancelled : FinishReason.Length;
            var generationClock = Stopwatch.StartNew();
            while (!cancelled)
            {
                if (generated >= request.MaxTokens || position >= context.ContextSize) { finish = FinishReason.Length; break; }
                if (cancellationToken.IsCancellationRequested) { finish = FinishReason.Cancelled; break; }

                var token = sampler.Sample(context.NativeHandle, batch.TokenCount - 1);
                firstToken ??= total.Elapsed;
                if (token.IsEndOfGeneration(vocab)) { finish = FinishReason.Stop; break; }
                generated++;

                decoder.Add(token);
                var piece = decoder.Read();
                var (emit, stopped) = stops.Append(piece);
                if (emit.Length > 0) yield return new CompletionChunk(emit, generated);
                if (stopped) { finish = FinishReason.Stop; break; }
                if (cancellationToken.IsCancellationRequested) { finish = FinishReason.Cancelled; break; }
                // The last allowed token needs no decode: nothing will be sampled after it.
                if (generated >= request.MaxTokens) { finish = FinishReason.Length; break; }

                batch.Clear();
                batch.Add(token, position++, LLamaSeqId.Zero, true);
                decoding = true;
                CheckDecode(context.Decode(batch));
                kept.Append(token);
                decoding = false;
            }
            generationClock.Stop();

            var rest = stops.Flush();
            if (rest.Length > 0) yield return new CompletionChunk(rest, generated);

            total.Stop();
            yield return new CompletionChunk(string.Empty, generated, new CompletionResult
            {
                Model = model.Name,
                Prompt = promptText,
                Text = stops.Text,
                PromptTokens = promptTokens.Length,
                CachedPromptTokens = cached,
                CompletionTokens = generated,
                TokensPerSecond = Rate(generated, generationClock.Elapsed),
                PromptTokensPerSecond = Rate(evaluated, promptClock.Elapsed),
                FinishReason = finish,
                ChatFormat = chatFormat,
                Duration = total.Elapsed,
                TimeToFirstToken = firstToken ?? total.Elapsed,
            });
        }
        finally
        {
            // A decode that failed half-way leaves the KV cache unknown: empty it rather than trust it next time.
            if (decoding) kept.Clear();
            if (chatContext is null)
            {
                if (request.CachePrompt) model.PromptCache.Return(kept);
                else kept.Dispose();
            }
        }
    }

    private static double Rate(int tokens, TimeSpan elapsed) =>
        tokens == 0 || elapsed <= TimeSpan.Zero ? 0 : tokens / elapsed.TotalSeconds;

    private static void CheckDecode(DecodeResult result)
    {
        if (result != DecodeResult.Ok) throw new InvalidOperationException($"llama.cpp failed to decode a batch ({result}).");
    }

    private static DefaultSamplingPipeline CreateSampler(CompletionRequest request, string? grammar)
    {
        var pipeline = new DefaultSamplingPipeline
        {
            Temperature = request.Temperature,
            TopK = request.TopK,
            TopP = request.TopP,
            MinP = request.MinP,
            RepeatPenalty = request.RepeatPenalty,
            Seed = request.Seed ?? (uint)Random.Shared.Next(),
            Grammar = string.IsNullOrWhiteSpace(grammar) ? null : new Grammar(grammar, "root"),
        };
        return pipeline;
    }
}
