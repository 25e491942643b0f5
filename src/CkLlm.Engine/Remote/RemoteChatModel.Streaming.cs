using System.Diagnostics;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json.Nodes;
using CkLlm.Engine.Inference;
using OpenAI.Chat;
using SdkChatMessage = OpenAI.Chat.ChatMessage;

namespace CkLlm.Engine.Remote;

public sealed partial class RemoteChatModel
{
    public async IAsyncEnumerable<CompletionChunk> StreamAsync(CompletionRequest request,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        request.Validate();
        RefuseUnsupported(request);
        var formatted = Format(request);
        // An exact count can refuse a prompt that cannot fit before it is sent; an estimate leaves that to the server.
        if (TokenCounting == "server" && CountTokens(formatted.Text) - TemplateAllowance >= ContextSize)
            throw new ArgumentException($"The prompt has more tokens than the context of model '{Name}' holds ({ContextSize}). Shorten it or import the model with a larger -ContextSize.", nameof(request));

        var clock = Stopwatch.StartNew();
        var text = new StringBuilder();
        var state = new StreamState();
        var pieces = request.IsChat ? ChatPiecesAsync(request, state, text, cancellationToken) : TextPiecesAsync(request, formatted.Text, state, text, cancellationToken);
        var received = 0;
        await foreach (var piece in pieces.ConfigureAwait(false))
        {
            state.FirstText ??= clock.Elapsed;
            text.Append(piece);
            yield return new CompletionChunk(piece, ++received);
        }
        clock.Stop();

        var promptTokens = state.PromptTokens ?? CountTokens(formatted.Text) - TemplateAllowance;
        var completionTokens = state.CompletionTokens ?? received;
        var firstText = state.FirstText ?? clock.Elapsed;
        var generating = clock.Elapsed - firstText;
        yield return new CompletionChunk(string.Empty, completionTokens, new CompletionResult
        {
            Model = Name,
            Prompt = formatted.Text,
            Text = text.ToString(),
            PromptTokens = promptTokens,
            CompletionTokens = completionTokens,
            TokensPerSecond = completionTokens > 1 && generating > TimeSpan.Zero ? (completionTokens - 1) / generating.TotalSeconds : 0,
            PromptTokensPerSecond = firstText > TimeSpan.Zero ? promptTokens / firstText.TotalSeconds : 0,
            FinishReason = state.Cancelled ? FinishReason.Cancelled : state.Finish ?? FinishReason.Stop,
            ChatFormat = formatted.Format,
            Duration = clock.Elapsed,
        });
    }

    /// <summary>What a stream reported besides its text.</summary>
    private sealed class StreamState
    {
        public TimeSpan? FirstText { get; set; }
        public FinishReason? Finish { get; set; }
        public int? PromptTokens { get; set; }
        public int? CompletionTokens { get; set; }
        public bool Cancelled { get; set; }
    }

    /// <summary>What the OpenAI API cannot carry is refused, not dropped.</summary>
    private void RefuseUnsupported(CompletionRequest request)
    {
        if (!string.IsNullOrEmpty(request.Grammar))
            throw new RemoteParameterNotSupportedException($"Model '{Name}' is remote: a GBNF -Grammar cannot be sent through the OpenAI API. Use -JsonSchema (sent as response_format) or a local model.", "Grammar");
        if (!string.IsNullOrEmpty(request.JsonSchema) && !request.IsChat)
            throw new RemoteParameterNotSupportedException($"Model '{Name}' is remote: -JsonSchema is sent as the chat API's response_format, which a raw -Prompt (the completions API) cannot carry. Add -System or use -Messages.", "JsonSchema");
        // Sent only by CkLlm's own defaults; any other value would be silently ignored by the OpenAI API.
        if (request.TopK != SamplingOptions.DefaultTopK)
            throw Unsupported("TopK", "top_k");
        if (Math.Abs(request.MinP - SamplingOptions.DefaultMinP) > 1e-6)
            throw Unsupported("MinP", "min_p");
        if (Math.Abs(request.RepeatPenalty - SamplingOptions.DefaultRepeatPenalty) > 1e-6)
            throw Unsupported("RepeatPenalty", "a repeat penalty");
    }

    private RemoteParameterNotSupportedException Unsupported(string parameter, string field) =>
        new($"Model '{Name}' is remote: the OpenAI API has no {field}, so -{parameter} cannot be honoured (CkLlm sends only the API's own fields; the server's default applies). Leave -{parameter} at its default or use a local model.", parameter);

    private string What => $"completion with '{RemoteModel}'";

    /// <summary>/v1/chat/completions through the SDK's streaming client.</summary>
    private async IAsyncEnumerable<string> ChatPiecesAsync(CompletionRequest request, StreamState state, StringBuilder received,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var messages = ChatFormatter.Messages(request).Select(ToSdkMessage).ToList();
        var options = new ChatCompletionOptions
        {
            Temperature = request.Temperature,
            TopP = request.TopP,
        };
#pragma warning disable OPENAI001, SCME0001 // seed and extra fields are marked experimental in the SDK
        if (request.Seed is { } seed) options.Seed = seed;
        // max_tokens, not the SDK's max_completion_tokens: Ollama documents only max_tokens, and vLLM, llama.cpp,
        // Azure OpenAI (non-reasoning models) and CkLlm take it too.
        options.Patch.Set("$.max_tokens"u8, request.MaxTokens);
#pragma warning restore OPENAI001, SCME0001
        foreach (var stop in request.Stop) options.StopSequences.Add(stop);
        if (!string.IsNullOrEmpty(request.JsonSchema))
            options.ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("response", BinaryData.FromString(request.JsonSchema));

        var updates = _endpoint.Chat.CompleteChatStreamingAsync(messages, options, cancellationToken);
        await foreach (var update in Guarded(updates, state, received, cancellationToken).ConfigureAwait(false))
        {
            if (update.Usage is { } usage)
            {
                state.PromptTokens = usage.InputTokenCount;
                state.CompletionTokens = usage.OutputTokenCount;
            }
            if (update.FinishReason is { } finish) state.Finish = finish == ChatFinishReason.Length ? FinishReason.Length : FinishReason.Stop;
            foreach (var part in update.ContentUpdate)
                if (part.Text is { Length: > 0 } piece) yield return piece;
        }
        EnsureEnded(state, received);
    }

    /// <summary>/v1/completions (a raw prompt, no chat template), streamed as server-sent events through the SDK pipeline.</summary>
    private async IAsyncEnumerable<string> TextPiecesAsync(CompletionRequest request, string prompt, StreamState state, StringBuilder received,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var body = new JsonObject
        {
            ["model"] = RemoteModel,
            ["prompt"] = prompt,
            ["stream"] = true,
            ["stream_options"] = new JsonObject { ["include_usage"] = true },
            ["max_tokens"] = request.MaxTokens,
            ["temperature"] = request.Temperature,
            ["top_p"] = request.TopP,
        };
        if (request.Seed is { } seed) body["seed"] = seed;
        if (request.Stop.Count > 0) body["stop"] = new JsonArray([.. request.Stop.Select(s => (JsonNode?)JsonValue.Create(s))]);

        System.ClientModel.Primitives.PipelineResponse response;
        try
        {
            response = await _endpoint.SendAsync("POST", new Uri(_endpoint.BaseUri, "completions"), body, true, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            state.Cancelled = true;
            yield break;
        }
        catch (Exception e)
        {
            throw _endpoint.Translate(e, What, cancellationToken);
        }
        using (response)
        {
            if (response.IsError)
            {
                await response.BufferContentAsync(cancellationToken).ConfigureAwait(false);
                throw _endpoint.FromStatus(response.Status, response, What);
            }
            var events = SseParser.Create(response.ContentStream!).EnumerateAsync(cancellationToken);
            await foreach (var item in Guarded(events, state, received, cancellationToken).ConfigureAwait(false))
            {
                if (item.Data == "[DONE]") break;
                var piece = ReadTextEvent(item.Data, state);
                if (piece.Length > 0) yield return piece;
            }
        }
        EnsureEnded(state, received);
    }

    /// <summary>Enumerates a server stream: its failures become remote-model exceptions (with the text received so far),
    /// and the caller's cancellation ends it quietly with <see cref="StreamState.Cancelled"/> set.</summary>
    private async IAsyncEnumerable<T> Guarded<T>(IAsyncEnumerable<T> source, StreamState state, StringBuilder received,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var items = source.GetAsyncEnumerator(cancellationToken);
        try
        {
            while (true)
            {
                T item;
                try
                {
                    if (!await items.MoveNextAsync().ConfigureAwait(false)) yield break;
                    item = items.Current;
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    state.Cancelled = true;
                    yield break;
                }
                catch (Exception e)
                {
                    throw _endpoint.Translate(e, What, cancellationToken, received.ToString());
                }
                yield return item;
            }
        }
        finally
        {
            await items.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>One completions event: choices[0].text, finish_reason, usage.</summary>
    private string ReadTextEvent(string data, StreamState state)
    {
        JsonNode? json;
        try { json = JsonNode.Parse(data); }
        catch (System.Text.Json.JsonException e)
        {
            throw new RemoteModelException(_endpoint.Clean($"'{Endpoint}' sent an event that is not JSON: {e.Message}"), Endpoint, e);
        }
        if (json?["usage"] is JsonObject usage)
        {
            state.PromptTokens = (int?)usage["prompt_tokens"] ?? state.PromptTokens;
            state.CompletionTokens = (int?)usage["completion_tokens"] ?? state.CompletionTokens;
        }
        if (json?["choices"] is not JsonArray { Count: > 0 } choices) return string.Empty;
        if (choices[0]?["finish_reason"]?.GetValue<string>() is { } finish)
            state.Finish = finish == "length" ? FinishReason.Length : FinishReason.Stop;
        return choices[0]?["text"]?.GetValue<string>() ?? string.Empty;
    }

    /// <summary>A stream that ended without saying why was cut off (a server stopping mid-answer may close cleanly).</summary>
    private void EnsureEnded(StreamState state, StringBuilder received)
    {
        if (state.Finish is not null || state.Cancelled) return;
        var partial = received.ToString();
        throw new RemoteStreamInterruptedException(_endpoint.Clean(
            $"The {What} from '{Endpoint}' ended before the server said it was complete. {partial.Length} characters had arrived; they are kept on the error (PartialText)."),
            Endpoint) { PartialText = partial };
    }

    private static SdkChatMessage ToSdkMessage(Inference.ChatMessage message) => message.Role.ToLowerInvariant() switch
    {
        "system" => new SystemChatMessage(message.Content),
        "user" => new UserChatMessage(message.Content),
        "assistant" => new AssistantChatMessage(message.Content),
        _ => throw new ArgumentException($"A remote chat takes the roles system, user and assistant, not '{message.Role}'."),
    };
}
