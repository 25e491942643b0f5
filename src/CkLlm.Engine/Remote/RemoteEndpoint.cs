using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net.Http;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Embeddings;

namespace CkLlm.Engine.Remote;

/// <summary>
/// One OpenAI-compatible server as the SDK reaches it: the typed chat client, and the same SDK pipeline (key, timeout,
/// retries) for what the SDK does not type (the legacy completions endpoint, the model list's metadata, llama.cpp's
/// /tokenize). Translates every failure into a <see cref="RemoteModelException"/> whose message never holds the key.
/// </summary>
internal sealed class RemoteEndpoint
{
    /// <summary>Sent when no key is given: the SDK always sends a bearer token, and servers without auth ignore it.</summary>
    private const string NoKey = "no-key";

    private readonly string? _apiKey;

    public RemoteEndpoint(RemoteModelOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        BaseUri = ApiBase(options.Endpoint);
        ServerRoot = Root(BaseUri);
        Display = DisplayOf(options.Endpoint);
        _apiKey = string.IsNullOrEmpty(options.ApiKey) ? null : options.ApiKey;
        var clientOptions = new OpenAIClientOptions
        {
            Endpoint = BaseUri,
            NetworkTimeout = options.Timeout,
            RetryPolicy = new RemoteRetryPolicy(options.MaxRetries, options.MaxRetryAfter),
        };
        var client = new OpenAIClient(new ApiKeyCredential(_apiKey ?? NoKey), clientOptions);
        Chat = client.GetChatClient(options.RemoteModel);
        Embeddings = client.GetEmbeddingClient(options.RemoteModel);
        Pipeline = client.Pipeline;
    }

    /// <summary>The API base the requests go to (".../v1").</summary>
    public Uri BaseUri { get; }

    /// <summary>The server's root (the base without a trailing "/v1"), where llama.cpp serves /tokenize and /props.</summary>
    public Uri ServerRoot { get; }

    /// <summary>The base address as shown to the user and in errors.</summary>
    public string Display { get; }

    public ChatClient Chat { get; }

    /// <summary>/v1/embeddings for the same model id, key, timeout and retries.</summary>
    public EmbeddingClient Embeddings { get; }

    /// <summary>The SDK pipeline (key, timeout, retries) shared by every client of this endpoint.</summary>
    public ClientPipeline Pipeline { get; }

    /// <summary>A bare server address gets "/v1"; any other path is kept (with a trailing slash so relative paths append).</summary>
    public static Uri ApiBase(Uri endpoint)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var builder = new UriBuilder(endpoint) { Query = "", Fragment = "" };
        var path = builder.Path.TrimEnd('/');
        builder.Path = (path.Length == 0 ? "/v1" : path) + "/";
        return builder.Uri;
    }

    /// <summary>The API base as shown in messages and recorded in locators: no credentials, query or trailing slash.</summary>
    public static string DisplayOf(Uri endpoint) => ApiBase(endpoint).GetLeftPart(UriPartial.Path).TrimEnd('/');

    private static Uri Root(Uri apiBase)
    {
        var path = apiBase.AbsolutePath.TrimEnd('/');
        if (path.EndsWith("/v1", StringComparison.OrdinalIgnoreCase)) path = path[..^3];
        return new UriBuilder(apiBase) { Path = path + "/" }.Uri;
    }

    /// <summary>Sends a JSON request through the SDK pipeline; the response is returned even when it is an error status.</summary>
    /// <param name="stream">Leave the body unbuffered (server-sent events).</param>
    public async Task<PipelineResponse> SendAsync(string method, Uri uri, JsonNode? body, bool stream, CancellationToken cancellationToken)
    {
        using var message = Pipeline.CreateMessage();
        message.Request.Method = method;
        message.Request.Uri = uri;
        message.Request.Headers.Set("Accept", stream ? "text/event-stream" : "application/json");
        if (body is not null)
        {
            message.Request.Headers.Set("Content-Type", "application/json");
            message.Request.Content = BinaryContent.Create(BinaryData.FromString(body.ToJsonString()));
        }
        // Through the options: Apply overwrites the message's BufferResponse with theirs (true by default), which
        // held a whole streamed answer back until its end.
        message.Apply(new RequestOptions { CancellationToken = cancellationToken, BufferResponse = !stream });
        await Pipeline.SendAsync(message).ConfigureAwait(false);
        return message.ExtractResponse() ?? throw new RemoteConnectionException($"'{Display}' gave no response.", Display);
    }

    /// <summary>The remote-model exception for <paramref name="error"/> (an SDK, HTTP or timeout failure); the caller's
    /// own cancellation is returned unchanged.</summary>
    /// <param name="what">What was being done, for the message ("chat completion with 'm'").</param>
    /// <param name="partialText">Text already received when a stream broke.</param>
    public Exception Translate(Exception error, string what, CancellationToken cancellationToken, string partialText = "")
    {
        ArgumentNullException.ThrowIfNull(error);
        if (error is RemoteModelException or RemoteParameterNotSupportedException) return error;
        if (error is OperationCanceledException && cancellationToken.IsCancellationRequested) return error;
        if (error is ClientResultException { Status: > 0 } failed) return FromStatus(failed.Status, failed.GetRawResponse(), what, failed);
        var partial = partialText.Length > 0 ? $" {partialText.Length} characters had arrived; they are kept on the error (PartialText)." : "";
        if (Find<OperationCanceledException>(error) is not null || Find<TimeoutException>(error) is not null)
            return new RemoteTimeoutException(Clean($"'{Display}' did not answer the {what} in time.{partial}"), Display, Keyless(error)) { PartialText = partialText };
        if (Find<SocketException>(error) is { } socket && partialText.Length == 0)
            return new RemoteConnectionException(Clean($"Could not connect to '{Display}' for the {what}: {socket.Message}"), Display, Keyless(error));
        if (partialText.Length > 0 || Find<IOException>(error) is not null)
            return new RemoteStreamInterruptedException(Clean($"The {what} from '{Display}' broke off before it ended ({FirstLine(error.Message)}).{partial}"), Display, Keyless(error)) { PartialText = partialText };
        if (Find<HttpRequestException>(error) is { } http)
            return new RemoteConnectionException(Clean($"Could not reach '{Display}' for the {what}: {http.Message}"), Display, Keyless(error));
        return new RemoteModelException(Clean($"The {what} from '{Display}' failed: {FirstLine(error.Message)}"), Display, Keyless(error));
    }

    /// <summary>The exception for an error status, with the server's own message when it sent one.</summary>
    public RemoteModelException FromStatus(int status, PipelineResponse? response, string what, Exception? inner = null)
    {
        inner = Keyless(inner);
        var detail = response is null ? "" : ServerMessage(response);
        detail = detail.Length > 0 ? $": {detail}" : ".";
        return status switch
        {
            401 => new RemoteAuthenticationException(Clean($"'{Display}' refused the {what} (401 Unauthorized): the API key is missing or wrong{detail}"), Display, inner) { Status = status },
            403 => new RemotePermissionException(Clean($"'{Display}' refused the {what} (403 Forbidden): the key may not use it{detail}"), Display, inner) { Status = status },
            404 => new RemoteModelNotFoundException(Clean($"'{Display}' does not serve the {what} (404 Not Found){detail}"), Display, inner) { Status = status },
            429 => RateLimited(response, what, detail, inner),
            408 or 504 => new RemoteTimeoutException(Clean($"'{Display}' timed out on the {what} ({status}){detail}"), Display, inner) { Status = status },
            _ => new RemoteModelException(Clean($"'{Display}' answered the {what} with {status} {response?.ReasonPhrase}{detail}"), Display, inner) { Status = status },
        };
    }

    private RemoteRateLimitException RateLimited(PipelineResponse? response, string what, string detail, Exception? inner)
    {
        var retryAfter = response is null ? null : RemoteRetryPolicy.RetryAfter(response);
        var when = retryAfter is { } wait ? $" Retry after {wait.TotalSeconds:0.#} s." : "";
        return new RemoteRateLimitException(Clean($"'{Display}' rate-limited the {what} (429 Too Many Requests){detail}{when}"), Display, retryAfter, inner) { Status = 429 };
    }

    /// <summary>The "error.message" (OpenAI shape) or "error"/"message" string of an error body, one line, at most 300 characters.</summary>
    private static string ServerMessage(PipelineResponse response)
    {
        try
        {
            var text = response.Content.ToString();
            if (string.IsNullOrWhiteSpace(text)) return "";
            try
            {
                var json = JsonNode.Parse(text);
                var message = json?["error"] switch
                {
                    JsonObject error => error["message"]?.GetValue<string>(),
                    JsonValue value => value.GetValue<string>(),
                    _ => json?["message"]?.GetValue<string>(),
                };
                if (!string.IsNullOrWhiteSpace(message)) text = message;
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException) { }
            text = FirstLine(text);
            return text.Length > 300 ? text[..300] + "..." : text;
        }
        catch (InvalidOperationException)
        {
            return ""; // an unbuffered (streamed) error body
        }
    }

    /// <summary>The exception to keep as the cause, or null when its text holds the key (the SDK's exception quotes the
    /// server's error body, which may echo the key): the remote exception's own message already says what happened.</summary>
    private Exception? Keyless(Exception? inner) =>
        inner is not null && _apiKey is { Length: > 0 } key && inner.ToString().Contains(key, StringComparison.Ordinal) ? null : inner;

    /// <summary>Removes the key from a message (a server may echo it back in an error).</summary>
    public string Clean(string message) =>
        _apiKey is { Length: > 0 } key ? message.Replace(key, "***", StringComparison.Ordinal) : message;

    private static string FirstLine(string text)
    {
        var line = text.Split('\n', 2)[0].Trim();
        return line;
    }

    private static T? Find<T>(Exception error) where T : Exception
    {
        for (Exception? e = error; e is not null; e = e.InnerException)
            if (e is T match) return match;
        return null;
    }
}
