using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using CkLlm.Engine.Inference;
using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Rag;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace CkLlm.Server.Serving;

/// <summary>How a generation ended, for the response's finish_reason, usage and (rag/ models) citations.</summary>
internal sealed record GenerationSummary(string FinishReason, int PromptTokens, int CompletionTokens, IReadOnlyList<CitationDto>? Citations);

/// <summary>New text, or (last) the summary.</summary>
internal readonly record struct GenerationEvent(string Text, GenerationSummary? Summary);

/// <summary>
/// The OpenAI-compatible API: GET /v1/models, POST /v1/chat/completions, /v1/completions, /v1/embeddings, and
/// POST /v1/search (Search-CkKnowledge over HTTP). A model id names a loaded model, or rag/&lt;name&gt; for a served
/// knowledge base (Invoke-CkRag's pipeline, answers with [n] markers and a citations array).
/// </summary>
internal static class OpenAiEndpoints
{
    private const int MaxSearchTop = 100;

    public static void Map(IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/v1/models", ListModelsAsync);
        endpoints.MapPost("/v1/chat/completions", ChatAsync);
        endpoints.MapPost("/v1/completions", CompletionsAsync);
        endpoints.MapPost("/v1/embeddings", EmbeddingsAsync);
        endpoints.MapPost("/v1/search", SearchAsync);
    }

    private static ServingContext Serving(HttpContext http) => http.RequestServices.GetRequiredService<ServingContext>();

    private static Task ListModelsAsync(HttpContext http)
    {
        var serving = Serving(http);
        var created = serving.Started.ToUnixTimeSeconds();
        var models = serving.ModelIds.Select(id => Describe(serving, id, created)).ToArray();
        return ServerResponses.WriteJsonAsync(http, new ModelListDto(models), ServerJson.Default.ModelListDto);
    }

    /// <summary>A /v1/models entry: the id, the context window a request gets (vLLM's max_model_len) and, for a
    /// llama.cpp model, llama.cpp server's meta. A rag/ id reports the window of the model that answers it.</summary>
    private static ModelDto Describe(ServingContext serving, string id, long created)
    {
        IChatModel? model;
        try { model = serving.ResolveModel(id).Model; }
        catch (ApiError) { model = null; } // removed meanwhile, or a rag/ id with no model loaded yet
        var meta = model is Engine.Model.LoadedModel loaded
            ? new ModelMetaDto(loaded.VocabularySize, loaded.ContextLength, loaded.Summary.EmbeddingLength, loaded.ParameterCount, loaded.FileSize)
            : null;
        return new ModelDto(id, created, "ckllm", model?.ContextSize is > 0 ? model.ContextSize : null, meta);
    }

    private static async Task ChatAsync(HttpContext http)
    {
        var serving = Serving(http);
        var dto = await RequestReader.ReadBodyAsync(http.Request, ServerJson.Default.ChatCompletionRequestDto, http.RequestAborted).ConfigureAwait(false);
        var id = RequestReader.RequireModel(dto.Model);
        var (model, knowledge) = serving.ResolveModel(id);
        var request = RequestReader.ToCompletionRequest(dto);
        var served = serving.Generation.Serve(model);
        ChoiceSource choice = knowledge is null
            ? cancellation => Generate(served, request, cancellation)
            : cancellation => AnswerFromKnowledge(served, knowledge, request, cancellation);
        await RespondAsync(http, serving, [choice], new ResponseShape(id, Chat: true, dto.Stream == true, dto.StreamOptions?.IncludeUsage == true, PerPrompt: 1)).ConfigureAwait(false);
    }

    private static async Task CompletionsAsync(HttpContext http)
    {
        var serving = Serving(http);
        var dto = await RequestReader.ReadBodyAsync(http.Request, ServerJson.Default.TextCompletionRequestDto, http.RequestAborted).ConfigureAwait(false);
        var id = RequestReader.RequireModel(dto.Model);
        var (model, knowledge) = serving.ResolveModel(id);
        if (knowledge is not null) throw ApiError.BadRequest($"'{id}' answers chats only: use /v1/chat/completions.", "model");
        var requests = RequestReader.ToCompletionRequests(dto, serving.Generation.Slots);
        var served = serving.Generation.Serve(model);
        var choices = requests.Choices.Select(request => (ChoiceSource)(cancellation => Generate(served, request, cancellation))).ToArray();
        await RespondAsync(http, serving, choices,
            new ResponseShape(id, Chat: false, dto.Stream == true, dto.StreamOptions?.IncludeUsage == true, requests.PerPrompt)).ConfigureAwait(false);
    }

    private static async Task EmbeddingsAsync(HttpContext http)
    {
        var serving = Serving(http);
        var dto = await RequestReader.ReadBodyAsync(http.Request, ServerJson.Default.EmbeddingRequestDto, http.RequestAborted).ConfigureAwait(false);
        var id = RequestReader.RequireModel(dto.Model);
        var knowledge = serving.FindKnowledgeBase(id)
            ?? serving.KnowledgeBases.FirstOrDefault(k => string.Equals(k.KnowledgeBase.Embedder, id, StringComparison.OrdinalIgnoreCase))
            ?? throw new ApiError(StatusCodes.Status404NotFound,
                $"No served knowledge base is '{id}'. Embeddings come from a served knowledge base's embedder: name it as rag/<name>.", "model", "model_not_found");
        var texts = RequestReader.EmbeddingInputs(dto);
        using var slot = await Admit(serving, http.RequestAborted).ConfigureAwait(false);
        var (vectors, tokens) = await Task.Run(() => knowledge.Embed(texts, http.RequestAborted), http.RequestAborted).ConfigureAwait(false);
        var base64 = dto.EncodingFormat == "base64";
        var data = vectors.Select((v, i) => new EmbeddingDto(i, base64
            ? JsonSerializer.SerializeToElement(Convert.ToBase64String(MemoryMarshal.AsBytes(v.AsSpan())), ServerJson.Default.String)
            : JsonSerializer.SerializeToElement(v, ServerJson.Default.SingleArray))).ToArray();
        await ServerResponses.WriteJsonAsync(http, new EmbeddingListDto(data, id, new EmbeddingUsageDto(tokens)), ServerJson.Default.EmbeddingListDto).ConfigureAwait(false);
    }

    private static async Task SearchAsync(HttpContext http)
    {
        var serving = Serving(http);
        var dto = await RequestReader.ReadBodyAsync(http.Request, ServerJson.Default.SearchRequestDto, http.RequestAborted).ConfigureAwait(false);
        var name = dto.KnowledgeBase ?? dto.Model;
        var knowledge = name is null
            ? serving.KnowledgeBases.Count == 1 ? serving.KnowledgeBases[0] : throw ApiError.BadRequest("'knowledge_base' is required when the server serves more or fewer than one.", "knowledge_base")
            : serving.FindKnowledgeBase(name) ?? throw new ApiError(StatusCodes.Status404NotFound, $"No served knowledge base is '{name}'.", "knowledge_base", "knowledge_base_not_found");
        if (string.IsNullOrWhiteSpace(dto.Query)) throw ApiError.BadRequest("'query' is required.", "query");
        if (dto.Top is < 1 or > MaxSearchTop) throw ApiError.BadRequest($"'top' must be between 1 and {MaxSearchTop}.", "top");
        if (dto.MinScore is { } minScore && (double.IsNaN(minScore) || minScore < 0)) throw ApiError.BadRequest("'min_score' must not be negative.", "min_score");
        SearchMode mode;
        try { mode = KnowledgeRagRetriever.ParseMode(dto.Mode ?? "Hybrid"); }
        catch (ArgumentException e) { throw ApiError.BadRequest(e.Message, "mode"); }
        var options = new SearchOptions { Top = dto.Top ?? 5, Mode = mode, Filter = dto.Filter, MinScore = dto.MinScore ?? 0 };
        using var slot = await Admit(serving, http.RequestAborted).ConfigureAwait(false);
        var hits = await Task.Run(() => knowledge.KnowledgeBase.Search(dto.Query, options), http.RequestAborted).ConfigureAwait(false);
        var data = hits.Select(h => new SearchHitDto(h.Rank, h.Score, h.Text, h.Source, h.Heading, h.Title, h.LineStart, h.LineEnd, h.Page, h.Citation, h.Metadata)).ToArray();
        await ServerResponses.WriteJsonAsync(http, new SearchResultDto(knowledge.ModelId, dto.Query, data), ServerJson.Default.SearchResultDto).ConfigureAwait(false);
    }

    private static async Task<IDisposable> Admit(ServingContext serving, CancellationToken cancellationToken) =>
        await serving.Admission.TryEnterAsync(cancellationToken).ConfigureAwait(false)
        ?? throw ApiError.Saturated($"The server is busy ({serving.Admission.MaxActive} requests running, {serving.Admission.MaxQueued} waiting). Retry later.");

    /// <summary>A completion on a loaded model; a prompt that cannot fit the context is refused before decoding.</summary>
    private static async IAsyncEnumerable<GenerationEvent> Generate(IChatModel model, CompletionRequest request,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var prompt = model.Format(request);
        var promptTokens = model.CountTokens(prompt.Text);
        if (promptTokens >= model.ContextSize)
            throw ApiError.BadRequest($"The prompt has {promptTokens} tokens; the context of model '{model.Name}' holds {model.ContextSize}.",
                request.IsChat ? "messages" : "prompt", "context_length_exceeded");
        await foreach (var chunk in model.StreamAsync(request, cancellationToken).ConfigureAwait(false))
        {
            if (chunk.Result is { } result)
            {
                yield return new GenerationEvent("", new GenerationSummary(FinishReason(result.FinishReason), result.PromptTokens, result.CompletionTokens, null));
                yield break;
            }
            if (chunk.Text.Length > 0) yield return new GenerationEvent(chunk.Text, null);
        }
    }

    /// <summary>A rag/ model: the last user message is the question, answered by Invoke-CkRag's pipeline.</summary>
    private static async IAsyncEnumerable<GenerationEvent> AnswerFromKnowledge(IChatModel model, ServedKnowledgeBase knowledge, CompletionRequest request,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var rag = new RagRequest
        {
            Question = RequestReader.LastUserMessage(request),
            Generation = request with { Messages = null, System = null },
        };
        var retriever = new KnowledgeRagRetriever(knowledge.KnowledgeBase);
        await foreach (var chunk in GenerationService.OffThread(() => RagEngine.Stream(rag, retriever, model, cancellationToken), cancellationToken).ConfigureAwait(false))
        {
            if (chunk.Answer is { } answer)
            {
                var citations = answer.Citations.Select(c => new CitationDto(c.Number, c.Source, c.Heading, c.LineStart, c.LineEnd, c.Page, c.Score,
                    c.Location, answer.CitedNumbers.Contains(c.Number))).ToArray();
                if (answer.NoKnowledge) yield return new GenerationEvent(answer.Answer ?? "", null);
                yield return new GenerationEvent("", new GenerationSummary(
                    answer.FinishReason is { } finish ? FinishReason(finish) : "stop", answer.PromptTokens, answer.CompletionTokens, citations));
                yield break;
            }
            if (chunk.Text.Length > 0) yield return new GenerationEvent(chunk.Text, null);
        }
    }

    private static string FinishReason(Engine.Inference.FinishReason reason) => reason switch
    {
        Engine.Inference.FinishReason.Length => "length",
        _ => "stop",
    };

    /// <param name="PerPrompt">Choices per prompt (n): usage counts each prompt's tokens once, as OpenAI does.</param>
    private sealed record ResponseShape(string Model, bool Chat, bool Stream, bool IncludeUsage, int PerPrompt);

    /// <summary>One choice's generation, started with the request's cancellation.</summary>
    private delegate IAsyncEnumerable<GenerationEvent> ChoiceSource(CancellationToken cancellationToken);

    /// <summary>
    /// Runs a request's choices under one admission slot, all at once (their sequences join the model's batch
    /// together), and answers as one JSON body or as server-sent events whose chunks carry each choice's index. Every
    /// choice's first event is awaited before anything is written, so a request the engine refuses still gets its
    /// 4xx status; the first failure cancels the other choices.
    /// </summary>
    private static async Task RespondAsync(HttpContext http, ServingContext serving, IReadOnlyList<ChoiceSource> choices, ResponseShape shape)
    {
        using var slot = await Admit(serving, http.RequestAborted).ConfigureAwait(false);
        var id = (shape.Chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N");
        var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
        var enumerators = choices.Select(choice => choice(cancel.Token).GetAsyncEnumerator(cancel.Token)).ToArray();
        // Every MoveNextAsync in flight, awaited before the enumerators are disposed.
        var inFlight = new List<Task>();
        try
        {
            var firsts = enumerators.Select(e => e.MoveNextAsync().AsTask()).ToArray();
            inFlight.AddRange(firsts);
            await FirstFailureOrAll(firsts, cancel).ConfigureAwait(false);
            if (firsts.Any(f => !f.Result)) throw new InvalidOperationException("The generation ended without a result.");
            var events = enumerators.Length == 1 ? ChoiceEvents(enumerators[0]) : MergedChoices(enumerators, inFlight, cancel.Token);

            var summaries = new GenerationSummary?[choices.Count];
            if (!shape.Stream)
            {
                var texts = choices.Select(_ => new StringBuilder()).ToArray();
                await foreach (var (index, e) in events.ConfigureAwait(false))
                {
                    texts[index].Append(e.Text);
                    if (e.Summary is not null) summaries[index] = e.Summary;
                }
                var usage = Usage(summaries, shape.PerPrompt);
                if (shape.Chat)
                    await ServerResponses.WriteJsonAsync(http, new ChatCompletionDto(id, created, shape.Model,
                        [new ChatChoiceDto(0, new AssistantMessageDto("assistant", texts[0].ToString()), summaries[0]!.FinishReason)], usage, summaries[0]!.Citations),
                        ServerJson.Default.ChatCompletionDto).ConfigureAwait(false);
                else
                    await ServerResponses.WriteJsonAsync(http, new TextCompletionDto(id, created, shape.Model,
                        texts.Select((text, index) => new TextChoiceDto(index, text.ToString(), summaries[index]!.FinishReason)).ToArray(), usage),
                        ServerJson.Default.TextCompletionDto).ConfigureAwait(false);
                return;
            }

            ServerResponses.StartEvents(http);
            try
            {
                if (shape.Chat) await WriteChatDeltaAsync(http, id, created, shape.Model, 0, new DeltaDto("assistant", ""), null, null).ConfigureAwait(false);
                await foreach (var (index, e) in events.ConfigureAwait(false))
                {
                    if (e.Summary is { } summary)
                    {
                        summaries[index] = summary;
                        if (shape.Chat) await WriteChatDeltaAsync(http, id, created, shape.Model, index, new DeltaDto(null, null), summary.FinishReason, summary.Citations).ConfigureAwait(false);
                        else await WriteTextChunkAsync(http, id, created, shape.Model, index, "", summary.FinishReason).ConfigureAwait(false);
                    }
                    else if (shape.Chat) await WriteChatDeltaAsync(http, id, created, shape.Model, index, new DeltaDto(null, e.Text), null, null).ConfigureAwait(false);
                    else await WriteTextChunkAsync(http, id, created, shape.Model, index, e.Text, null).ConfigureAwait(false);
                }
                if (shape.IncludeUsage)
                {
                    var usage = Usage(summaries, shape.PerPrompt);
                    if (shape.Chat) await ServerResponses.WriteEventAsync(http, new ChatCompletionChunkDto(id, created, shape.Model, [], usage, null), ServerJson.Default.ChatCompletionChunkDto).ConfigureAwait(false);
                    else await ServerResponses.WriteEventAsync(http, new TextCompletionDto(id, created, shape.Model, [], usage), ServerJson.Default.TextCompletionDto).ConfigureAwait(false);
                }
                await ServerResponses.WriteDoneAsync(http).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException || !http.RequestAborted.IsCancellationRequested)
            {
                // Headers are gone: the failure travels in the stream, as OpenAI's servers do it.
                serving.CountFailure();
                await ServerResponses.WriteEventErrorAsync(http, ServerResponses.ToApiError(e)).ConfigureAwait(false);
            }
        }
        finally
        {
            cancel.Cancel();
            foreach (var task in inFlight)
            {
                try { await task.ConfigureAwait(false); }
                catch (Exception) { } // already reported (or the request is gone); only the enumerators' disposal is left
            }
            foreach (var e in enumerators) await e.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Waits until every task completed, or rethrows the first failure after cancelling the others.</summary>
    private static async Task FirstFailureOrAll(IEnumerable<Task<bool>> tasks, CancellationTokenSource cancel)
    {
        var pending = tasks.ToList();
        while (pending.Count > 0)
        {
            var done = await Task.WhenAny(pending).ConfigureAwait(false);
            pending.Remove(done);
            if (!done.IsCompletedSuccessfully)
            {
                cancel.Cancel();
                await done.ConfigureAwait(false);
            }
        }
    }

    /// <summary>One choice's events (its current one first) up to its summary, tagged with <paramref name="index"/>. A
    /// single choice is read by the response directly as it writes: no pump and no channel, so each token reaches the
    /// response with one thread hand-over less (on a machine whose cores run ggml's compute threads, every wake-up
    /// competes with the decode).</summary>
    private static async IAsyncEnumerable<(int Index, GenerationEvent Event)> ChoiceEvents(IAsyncEnumerator<GenerationEvent> choice, int index = 0)
    {
        do
        {
            yield return (index, choice.Current);
            if (choice.Current.Summary is not null) yield break;
        }
        while (await choice.MoveNextAsync().ConfigureAwait(false));
        throw new InvalidOperationException("The generation ended without a result.");
    }

    /// <summary>Several choices' events as they come (each pumped into one channel), tagged with the choice's index.
    /// The pumps join <paramref name="inFlight"/>, awaited before the enumerators are disposed.</summary>
    private static IAsyncEnumerable<(int Index, GenerationEvent Event)> MergedChoices(IAsyncEnumerator<GenerationEvent>[] choices, List<Task> inFlight,
        CancellationToken cancellationToken)
    {
        var events = Channel.CreateUnbounded<(int Index, GenerationEvent Event)>(new UnboundedChannelOptions { SingleReader = true });
        var pumps = choices.Select((e, index) => PumpAsync(e, index, events.Writer)).ToArray();
        inFlight.AddRange(pumps);
        _ = Task.WhenAll(pumps).ContinueWith(t => events.Writer.TryComplete(t.IsCanceled ? new OperationCanceledException(cancellationToken) : t.Exception?.InnerException),
            TaskScheduler.Default);
        return events.Reader.ReadAllAsync(cancellationToken);
    }

    /// <summary>Hands one choice's events to the response's channel.</summary>
    private static async Task PumpAsync(IAsyncEnumerator<GenerationEvent> choice, int index, ChannelWriter<(int, GenerationEvent)> events)
    {
        await foreach (var e in ChoiceEvents(choice, index).ConfigureAwait(false))
            await events.WriteAsync(e).ConfigureAwait(false);
    }

    /// <summary>Usage over every choice: completion tokens of all, prompt tokens once per prompt.</summary>
    private static UsageDto Usage(IReadOnlyList<GenerationSummary?> summaries, int perPrompt) => new(
        summaries.Where((_, index) => index % perPrompt == 0).Sum(s => s?.PromptTokens ?? 0),
        summaries.Sum(s => s?.CompletionTokens ?? 0));

    private static Task WriteChatDeltaAsync(HttpContext http, string id, long created, string model, int index, DeltaDto delta, string? finishReason,
        IReadOnlyList<CitationDto>? citations) =>
        ServerResponses.WriteEventAsync(http, new ChatCompletionChunkDto(id, created, model, [new ChatChunkChoiceDto(index, delta, finishReason)], null, citations),
            ServerJson.Default.ChatCompletionChunkDto);

    private static Task WriteTextChunkAsync(HttpContext http, string id, long created, string model, int index, string text, string? finishReason) =>
        ServerResponses.WriteEventAsync(http, new TextCompletionDto(id, created, model, [new TextChoiceDto(index, text, finishReason)], null),
            ServerJson.Default.TextCompletionDto);
}
