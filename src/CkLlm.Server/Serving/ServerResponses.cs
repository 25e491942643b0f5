using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using CkLlm.Engine.Rag;
using CkLlm.Engine.Session;
using Microsoft.AspNetCore.Http;

namespace CkLlm.Server.Serving;

/// <summary>Writes JSON bodies, OpenAI error bodies and server-sent events.</summary>
internal static class ServerResponses
{
    private static readonly byte[] EventPrefix = "data: "u8.ToArray();
    private static readonly byte[] EventEnd = "\n\n"u8.ToArray();
    private static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();

    public static async Task WriteJsonAsync<T>(HttpContext context, T body, JsonTypeInfo<T> typeInfo, int status = StatusCodes.Status200OK)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await JsonSerializer.SerializeAsync(context.Response.Body, body, typeInfo, context.RequestAborted).ConfigureAwait(false);
    }

    public static Task WriteErrorAsync(HttpContext context, ApiError error)
    {
        if (error.Status == StatusCodes.Status401Unauthorized) context.Response.Headers.WWWAuthenticate = "Bearer";
        return WriteJsonAsync(context, new ErrorBodyDto(new ErrorDto(error.Message, error.Type, error.Param, error.Code)),
            ServerJson.Default.ErrorBodyDto, error.Status);
    }

    /// <summary>What an exception from the engine means for the client: a 4xx for the request's own faults, 404 for a
    /// model removed meanwhile, 500 for anything else (a bug, never the client's fault).</summary>
    public static ApiError ToApiError(Exception error) => error switch
    {
        ApiError api => api,
        RagBudgetException e => ApiError.BadRequest(e.Message, "messages", "context_length_exceeded"),
        ModelNotLoadedException e => new ApiError(StatusCodes.Status404NotFound, e.Message, "model", "model_not_found"),
        ObjectDisposedException e => new ApiError(StatusCodes.Status404NotFound, $"The model was removed from the session ({e.ObjectName}).", "model", "model_not_found"),
        ArgumentException e => ApiError.BadRequest(e.Message, null, "invalid_request"),
        NotSupportedException e => ApiError.BadRequest(e.Message, null, "not_supported"),
        _ => new ApiError(StatusCodes.Status500InternalServerError, $"The server failed on this request: {error.GetType().Name}: {error.Message}"),
    };

    public static void StartEvents(HttpContext context)
    {
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        context.Response.Headers["X-Accel-Buffering"] = "no";
    }

    /// <summary>One event, written whole and flushed once: one chunk and one send per token. (Each write to
    /// Response.Body flushes: prefix, JSON and blank line went out as three sends, each waking the client, while the
    /// model's compute threads had the cores.)</summary>
    public static async Task WriteEventAsync<T>(HttpContext context, T body, JsonTypeInfo<T> typeInfo)
    {
        var writer = context.Response.BodyWriter;
        writer.Write(EventPrefix);
        using (var json = new Utf8JsonWriter(writer, new JsonWriterOptions { Encoder = typeInfo.Options.Encoder, Indented = typeInfo.Options.WriteIndented }))
            JsonSerializer.Serialize(json, body, typeInfo);
        writer.Write(EventEnd);
        await writer.FlushAsync(context.RequestAborted).ConfigureAwait(false);
    }

    public static async Task WriteDoneAsync(HttpContext context) =>
        await context.Response.BodyWriter.WriteAsync(Done, context.RequestAborted).ConfigureAwait(false);

    /// <summary>An error after the event stream started: OpenAI's clients read an "error" object in the stream.</summary>
    public static Task WriteEventErrorAsync(HttpContext context, ApiError error) =>
        WriteEventAsync(context, new ErrorBodyDto(new ErrorDto(error.Message, error.Type, error.Param, error.Code)), ServerJson.Default.ErrorBodyDto);
}
