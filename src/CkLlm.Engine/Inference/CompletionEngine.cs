using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;
using CkLlm.Engine.Model;
using LLama;
using LLama.Native;
using LLama.Sampling;

namespace CkLlm.Engine.Inference;

/// <summary>
/// Runs completions on a <see cref="LoadedModel"/>. Every call gets a fresh llama.cpp context (KV cache), so calls are
/// independent, several may run at once on one model, and a cancelled call leaves nothing behind.
/// </summary>
public static class CompletionEngine
{
    /// <summary>
    /// Streams text as it is generated; the last chunk carries the result. Decoding runs on a worker thread, one chunk
    /// ahead at most: the caller's thread only receives chunks (see <see cref="WorkerThread"/>).
    /// </summary>
    /// <remarks>Cancellation is checked before every token: it ends the stream with FinishReason Cancelled, no exception.</remarks>
    public static IEnumerable<CompletionChunk> Stream(LoadedModel model, CompletionRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(request);
        Validate(request);
        var (promptText, chatFormat, extraStops) = ChatFormatter.Format(model, request);
        var grammar = request.JsonSchema is { Length: > 0 } ? JsonSchemaGrammar.ToGbnf(request.JsonSchema) : request.Grammar;
        return WorkerThread.Enumerate(Run(model, request, promptText, chatFormat, extraStops, grammar, cancellationToken), "CkLlm completion");
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
        string chatFormat, IReadOnlyList<string> extraStops, string? grammar, CancellationToken cancellationToken)
    {
        var total = Stopwatch.StartNew();
        using var use = model.AcquireUse();
        var weights = model.Weights;
        using var context = weights.CreateContext(model.Parameters);
        if (model.LoraAdapters.Count > 0)
        {
            var adapters = model.LoraAdapters.Select(a => (a, 1f)).ToArray();
            context.NativeHandle.SetLoraAdapters(adapters);
        }

        var vocab = weights.Vocab;
        var promptTokens = context.Tokenize(promptText, addBos: vocab.ShouldAddBOS, special: true);
        if (promptTokens.Length == 0) promptTokens = [vocab.BOS ?? default];
        if (promptTokens.Length >= context.ContextSize)
            throw new ArgumentException($"The prompt has {promptTokens.Length} tokens; the context of model '{model.Name}' holds {context.ContextSize}. Shorten it or import the model with a larger -ContextSize.");

        using var sampler = CreateSampler(request, grammar);
        var stops = new StopMatcher(request.Stop.Concat(extraStops));
        var decoder = new StreamingTokenDecoder(context);
        var batch = new LLamaBatch();

        // Prompt processing, in batches the context accepts; cancellation is honoured between batches.
        var promptClock = Stopwatch.StartNew();
        var position = 0;
        var batchSize = (int)context.BatchSize;
        var cancelled = false;
        while (position < promptTokens.Length)
        {
            if (cancellationToken.IsCancellationRequested) { cancelled = true; break; }
            var count = Math.Min(batchSize, promptTokens.Length - position);
            batch.Clear();
            for (var i = 0; i < count; i++)
                batch.Add(promptTokens[position + i], position + i, LLamaSeqId.Zero, position + i == promptTokens.Length - 1);
            CheckDecode(context.Decode(batch));
            position += count;
        }
        promptClock.Stop();

        var generated = 0;
        var finish = cancelled ? FinishReason.Cancelled : FinishReason.Length;
        var generationClock = Stopwatch.StartNew();
        while (!cancelled)
        {
            if (generated >= request.MaxTokens || position >= context.ContextSize) { finish = FinishReason.Length; break; }
            if (cancellationToken.IsCancellationRequested) { finish = FinishReason.Cancelled; break; }

            var token = sampler.Sample(context.NativeHandle, batch.TokenCount - 1);
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
            CheckDecode(context.Decode(batch));
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
            CompletionTokens = generated,
            TokensPerSecond = Rate(generated, generationClock.Elapsed),
            PromptTokensPerSecond = Rate(position > 0 ? Math.Min(position, promptTokens.Length) : 0, promptClock.Elapsed),
            FinishReason = finish,
            ChatFormat = chatFormat,
            Duration = total.Elapsed,
        });
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
