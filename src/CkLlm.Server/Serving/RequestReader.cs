using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using CkLlm.Engine.Inference;
using Microsoft.AspNetCore.Http;

namespace CkLlm.Server.Serving;

/// <summary>A /v1/completions request's choices in OpenAI's order, <see cref="PerPrompt"/> (n) for each prompt.</summary>
internal sealed record TextCompletionChoices(IReadOnlyList<CompletionRequest> Choices, int PerPrompt);

/// <summary>
/// Turns an OpenAI request body into the engine's request records. Everything a client can get wrong (not JSON, the
/// wrong JSON type, out-of-range numbers, unsupported shapes) becomes an <see cref="ApiError"/> 400 naming the
/// parameter, before any model is asked.
/// </summary>
internal static class RequestReader
{
    /// <summary>Most stop strings OpenAI accepts.</summary>
    private const int MaxStops = 4;

    /// <summary>Most texts in one embeddings request (OpenAI's own limit).</summary>
    public const int MaxEmbeddingInputs = 2048;

    public static async Task<T> ReadBodyAsync<T>(HttpRequest request, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken)
        where T : class
    {
        if (request.ContentType is { } type && !type.Contains("json", StringComparison.OrdinalIgnoreCase))
            throw ApiError.BadRequest($"The body must be JSON (Content-Type application/json), not '{type}'.");
        // Read whole (Kestrel bounds it: a larger body is a 413) and check the encoding first: System.Text.Json accepts
        // some invalid UTF-8 inside strings (replacing it) and fails on other sequences with a non-JSON exception.
        using var buffer = new MemoryStream();
        await request.Body.CopyToAsync(buffer, cancellationToken).ConfigureAwait(false);
        var bytes = buffer.GetBuffer().AsSpan(0, (int)buffer.Length);
        if (!System.Text.Unicode.Utf8.IsValid(bytes)) throw ApiError.BadRequest("The body is not valid UTF-8.");
        T? body;
        try
        {
            body = JsonSerializer.Deserialize(bytes, typeInfo);
        }
        catch (JsonException e)
        {
            var where = e.Path is { Length: > 1 } path ? $" at {path}" : "";
            throw ApiError.BadRequest($"The body is not a valid request{where}: {FirstLine(e.Message)}", ParamOf(e.Path));
        }
        catch (Exception e) when (e is NotSupportedException or InvalidOperationException)
        {
            throw ApiError.BadRequest($"The body could not be read as JSON: {FirstLine(e.Message)}");
        }
        return body ?? throw ApiError.BadRequest("The body must be a JSON object.");
    }

    public static string RequireModel(string? model) =>
        string.IsNullOrWhiteSpace(model) ? throw ApiError.BadRequest("'model' is required.", "model") : model;

    /// <summary>The chat request as the engine's record (sampling, stops, response format). Messages are mapped by
    /// the caller's choice of model (a rag/ model takes only the question).</summary>
    public static CompletionRequest ToCompletionRequest(ChatCompletionRequestDto dto)
    {
        if (dto.N is not (null or 1)) throw ApiError.BadRequest("Only n = 1 is supported for chat completions (/v1/completions takes n > 1).", "n");
        if (dto.Messages is not { Count: > 0 }) throw ApiError.BadRequest("'messages' must be a non-empty array.", "messages");
        var messages = dto.Messages.Select((m, i) => ToChatMessage(m, i)).ToArray();
        return Sampling(dto, dto.MaxCompletionTokens ?? dto.MaxTokens) with
        {
            Messages = messages,
            JsonSchema = ResponseSchema(dto.ResponseFormat),
        };
    }

    /// <summary>
    /// A /v1/completions request as one engine request per choice, in OpenAI's order: prompt i's j-th of n choices is
    /// choice i * n + j. <c>prompt</c> is a string or an array of strings; with a seed, choice j of each prompt samples
    /// with seed + j, so the n choices differ and the same request gives the same choices again. At most
    /// <paramref name="maxChoices"/> choices (the sequences the server decodes at once), so one request cannot hold
    /// the batch.
    /// </summary>
    public static TextCompletionChoices ToCompletionRequests(TextCompletionRequestDto dto, int maxChoices)
    {
        if (dto.Echo == true) throw ApiError.BadRequest("'echo' is not supported.", "echo");
        string[] prompts = dto.Prompt switch
        {
            { ValueKind: JsonValueKind.String } p => [p.GetString()!],
            { ValueKind: JsonValueKind.Array } p when p.GetArrayLength() == 0 => throw ApiError.BadRequest("'prompt' must not be an empty array.", "prompt"),
            { ValueKind: JsonValueKind.Array } p when p.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String) =>
                p.EnumerateArray().Select(e => e.GetString()!).ToArray(),
            { ValueKind: JsonValueKind.Array } => throw ApiError.BadRequest("'prompt' must be a string or an array of strings (token arrays are not supported).", "prompt"),
            null or { ValueKind: JsonValueKind.Null } => throw ApiError.BadRequest("'prompt' is required.", "prompt"),
            _ => throw ApiError.BadRequest("'prompt' must be a string or an array of strings.", "prompt"),
        };
        var n = dto.N ?? 1;
        if (n < 1) throw ApiError.BadRequest("'n' must be at least 1.", "n");
        if ((long)prompts.Length * n > maxChoices)
            throw ApiError.BadRequest($"{prompts.Length} prompt(s) x n = {n} asks for {(long)prompts.Length * n} choices; this server generates at most {maxChoices} at once per request.",
                prompts.Length > maxChoices ? "prompt" : "n");
        var sampling = Sampling(dto, dto.MaxTokens);
        var choices = new CompletionRequest[prompts.Length * n];
        for (var i = 0; i < prompts.Length; i++)
            for (var j = 0; j < n; j++)
                choices[i * n + j] = sampling with { Prompt = prompts[i], Seed = sampling.Seed is { } seed ? unchecked(seed + (uint)j) : null };
        return new TextCompletionChoices(choices, n);
    }

    /// <summary>The last user message: the question a rag/ model answers.</summary>
    public static string LastUserMessage(CompletionRequest request) =>
        request.Messages?.LastOrDefault(m => m.Role == "user")?.Content is { Length: > 0 } question && !string.IsNullOrWhiteSpace(question)
            ? question
            : throw ApiError.BadRequest("A rag/ model needs a non-empty user message (the question).", "messages");

    public static IReadOnlyList<string> EmbeddingInputs(EmbeddingRequestDto dto)
    {
        string[] texts = dto.Input switch
        {
            { ValueKind: JsonValueKind.String } s => [s.GetString()!],
            { ValueKind: JsonValueKind.Array } a when a.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String) =>
                a.EnumerateArray().Select(e => e.GetString()!).ToArray(),
            { ValueKind: JsonValueKind.Array } => throw ApiError.BadRequest("'input' must be a string or an array of strings (token arrays are not supported).", "input"),
            null or { ValueKind: JsonValueKind.Null } => throw ApiError.BadRequest("'input' is required.", "input"),
            _ => throw ApiError.BadRequest("'input' must be a string or an array of strings.", "input"),
        };
        if (texts.Length == 0) throw ApiError.BadRequest("'input' must not be an empty array.", "input");
        if (texts.Length > MaxEmbeddingInputs) throw ApiError.BadRequest($"'input' holds {texts.Length} texts; at most {MaxEmbeddingInputs} are accepted.", "input");
        if (texts.Any(string.IsNullOrEmpty)) throw ApiError.BadRequest("'input' must not contain empty strings.", "input");
        if (dto.EncodingFormat is not (null or "float" or "base64"))
            throw ApiError.BadRequest($"'encoding_format' must be 'float' or 'base64', not '{dto.EncodingFormat}'.", "encoding_format");
        if (dto.Dimensions is not null) throw ApiError.BadRequest("'dimensions' is not supported: the embedder's size is fixed.", "dimensions");
        return texts;
    }

    private static CompletionRequest Sampling(GenerationRequestDto dto, int? maxTokens)
    {
        var (temperature, topP, seed) = (dto.Temperature, dto.TopP, dto.Seed);
        if (maxTokens is < 1) throw ApiError.BadRequest("'max_tokens' must be at least 1.", "max_tokens");
        if (temperature is { } t && (float.IsNaN(t) || t < 0 || t > 2)) throw ApiError.BadRequest("'temperature' must be between 0 and 2.", "temperature");
        if (topP is { } p && (float.IsNaN(p) || p <= 0 || p > 1)) throw ApiError.BadRequest("'top_p' must be greater than 0 and at most 1.", "top_p");
        var request = new CompletionRequest
        {
            MaxTokens = maxTokens ?? SamplingOptions.DefaultMaxTokens,
            // OpenAI's default temperature is 1; the engine's default (0.8) is what Invoke-CkCompletion users get too.
            Temperature = temperature ?? SamplingOptions.DefaultTemperature,
            TopP = topP ?? SamplingOptions.DefaultTopP,
            // OpenAI seeds are 64-bit; llama.cpp's are 32-bit: the low 32 bits keep equal seeds equal.
            Seed = seed is { } s ? unchecked((uint)s) : null,
            Stop = Stops(dto.Stop),
        };
        return request;
    }

    private static string[] Stops(JsonElement? stop)
    {
        string[] stops = stop switch
        {
            null or { ValueKind: JsonValueKind.Null } => [],
            { ValueKind: JsonValueKind.String } s => [s.GetString()!],
            { ValueKind: JsonValueKind.Array } a when a.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String) =>
                a.EnumerateArray().Select(e => e.GetString()!).ToArray(),
            _ => throw ApiError.BadRequest("'stop' must be a string or an array of strings.", "stop"),
        };
        if (stops.Length > MaxStops) throw ApiError.BadRequest($"'stop' takes at most {MaxStops} strings.", "stop");
        if (stops.Any(string.IsNullOrEmpty)) throw ApiError.BadRequest("'stop' strings must not be empty.", "stop");
        return stops;
    }

    private static ChatMessage ToChatMessage(ChatMessageDto? message, int index)
    {
        var param = $"messages[{index}]";
        if (message is null) throw ApiError.BadRequest($"{param} must be an object.", param);
        var role = message.Role?.ToLowerInvariant() switch
        {
            "system" or "developer" => "system",
            "user" => "user",
            "assistant" => "assistant",
            null => throw ApiError.BadRequest($"{param}.role is required.", param + ".role"),
            _ => throw ApiError.BadRequest($"{param}.role '{message.Role}' is not supported (system, developer, user, assistant).", param + ".role"),
        };
        return new ChatMessage(role, Content(message.Content, param + ".content"));
    }

    /// <summary>A message's content: a string, or an array of text parts (what the OpenAI SDKs send).</summary>
    private static string Content(JsonElement? content, string param)
    {
        switch (content)
        {
            case { ValueKind: JsonValueKind.String } s:
                return s.GetString()!;
            case { ValueKind: JsonValueKind.Array } parts:
                var text = new System.Text.StringBuilder();
                foreach (var part in parts.EnumerateArray())
                {
                    if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
                        throw ApiError.BadRequest($"{param} parts must be objects with a 'type'.", param);
                    if (type.GetString() != "text" || !part.TryGetProperty("text", out var partText) || partText.ValueKind != JsonValueKind.String)
                        throw ApiError.BadRequest($"{param}: only text parts are supported.", param);
                    text.Append(partText.GetString());
                }
                return text.ToString();
            case null or { ValueKind: JsonValueKind.Null }:
                throw ApiError.BadRequest($"{param} is required.", param);
            default:
                throw ApiError.BadRequest($"{param} must be a string or an array of text parts.", param);
        }
    }

    /// <summary>response_format: text (nothing), json_schema (its schema becomes the grammar), json_object (any JSON object).</summary>
    private static string? ResponseSchema(ResponseFormatDto? format)
    {
        switch (format?.Type)
        {
            case null or "text":
                return null;
            case "json_object":
                return """{"type":"object"}""";
            case "json_schema":
                if (format.JsonSchema?.Schema is not { ValueKind: JsonValueKind.Object } schema)
                    throw ApiError.BadRequest("'response_format.json_schema.schema' must be a JSON object.", "response_format.json_schema.schema");
                return schema.GetRawText();
            default:
                throw ApiError.BadRequest($"'response_format.type' '{format.Type}' is not supported (text, json_object, json_schema).", "response_format.type");
        }
    }

    private static string? ParamOf(string? jsonPath) =>
        jsonPath is { Length: > 2 } p && p.StartsWith("$.", StringComparison.Ordinal) ? p[2..] : null;

    private static string FirstLine(string message)
    {
        var end = message.IndexOfAny(['\r', '\n']);
        return end < 0 ? message : message[..end];
    }
}
