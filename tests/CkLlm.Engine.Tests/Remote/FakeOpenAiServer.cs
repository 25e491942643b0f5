using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace CkLlm.Engine.Tests.Remote;

/// <summary>
/// A scripted OpenAI-compatible server on a loopback port (HttpListener): GET /v1/models, optional POST /tokenize, and
/// POST /v1/chat/completions and /v1/completions answered by <see cref="Respond"/> (default: streams
/// <see cref="Pieces"/>). It records every request, so tests see what the client really sent.
/// </summary>
internal sealed class FakeOpenAiServer : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Task _loop;

    public FakeOpenAiServer()
    {
        Port = FreePort();
        _listener.Prefixes.Add($"http://127.0.0.1:{Port}/");
        _listener.Start();
        _loop = Task.Run(LoopAsync);
    }

    public int Port { get; }
    public Uri Endpoint => new($"http://127.0.0.1:{Port}");
    public List<string> Models { get; } = ["test-model"];
    public int? ModelContextLength { get; set; }
    /// <summary>Tokens per word for /tokenize; null: no /tokenize (404).</summary>
    public bool Tokenizer { get; set; }
    public string[] Pieces { get; set; } = ["Hello", ", ", "world"];
    public string FinishReason { get; set; } = "stop";
    /// <summary>Replaces the default generation handler (status codes, cut streams, delays).</summary>
    public Func<HttpListenerContext, JsonObject, Task>? Respond { get; set; }
    public ConcurrentQueue<RecordedRequest> Requests { get; } = new();
    /// <summary>Length of the vectors /v1/embeddings returns (bags of hashed words, see <see cref="Vector"/>).</summary>
    public int EmbeddingDimensions { get; set; } = 64;
    /// <summary>Replaces the default /v1/embeddings handler.</summary>
    public Func<HttpListenerContext, JsonObject, Task>? RespondEmbeddings { get; set; }

    public IEnumerable<RecordedRequest> EmbeddingRequests => Requests.Where(r => r.Path == "/v1/embeddings");

    public IEnumerable<RecordedRequest> Generations => Requests.Where(r => r.Path.EndsWith("completions", StringComparison.Ordinal));

    public sealed record RecordedRequest(string Method, string Path, string? Authorization, JsonObject? Body);

    public static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync(); }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException) { return; }
            _ = Task.Run(() => HandleAsync(context));
        }
    }

    private async Task HandleAsync(HttpListenerContext context)
    {
        try
        {
            var path = context.Request.Url!.AbsolutePath;
            JsonObject? body = null;
            if (context.Request.HasEntityBody)
            {
                using var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8);
                body = JsonNode.Parse(await reader.ReadToEndAsync()) as JsonObject;
            }
            Requests.Enqueue(new RecordedRequest(context.Request.HttpMethod, path, context.Request.Headers["Authorization"], body));
            switch (path)
            {
                case "/v1/models":
                    await WriteJsonAsync(context, 200, new JsonObject
                    {
                        ["object"] = "list",
                        ["data"] = new JsonArray([.. Models.Select(id => (JsonNode)new JsonObject
                        {
                            ["id"] = id, ["object"] = "model", ["owned_by"] = "test",
                            ["context_length"] = ModelContextLength is { } n ? n : null,
                        })]),
                    });
                    break;
                case "/tokenize" when Tokenizer:
                    var words = (body?["content"]?.GetValue<string>() ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    await WriteJsonAsync(context, 200, new JsonObject { ["tokens"] = new JsonArray([.. words.Select((_, i) => (JsonNode)i)]) });
                    break;
                case "/v1/embeddings":
                    await (RespondEmbeddings ?? EmbedAsync)(context, body!);
                    break;
                case "/v1/chat/completions" or "/v1/completions":
                    await (Respond ?? StreamPiecesAsync)(context, body!);
                    break;
                default:
                    await WriteJsonAsync(context, 404, new JsonObject { ["error"] = new JsonObject { ["message"] = $"no route {path}" } });
                    break;
            }
        }
        catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException) { }
    }

    /// <summary>The default embeddings: one vector per input, as floats or base64 as the request asks.</summary>
    public Task EmbedAsync(HttpListenerContext context, JsonObject body)
    {
        var inputs = body["input"] is JsonArray array ? array.Select(i => i!.GetValue<string>()).ToArray() : [body["input"]!.GetValue<string>()];
        var base64 = (string?)body["encoding_format"] == "base64";
        var data = inputs.Select((text, i) =>
        {
            var vector = Vector(text, EmbeddingDimensions);
            JsonNode embedding = base64
                ? JsonValue.Create(Convert.ToBase64String(System.Runtime.InteropServices.MemoryMarshal.AsBytes(vector.AsSpan())))
                : new JsonArray([.. vector.Select(x => (JsonNode)x)]);
            return (JsonNode)new JsonObject { ["object"] = "embedding", ["index"] = i, ["embedding"] = embedding };
        });
        return WriteJsonAsync(context, 200, new JsonObject
        {
            ["object"] = "list", ["model"] = body["model"]?.GetValue<string>(), ["data"] = new JsonArray([.. data]),
            ["usage"] = new JsonObject { ["prompt_tokens"] = inputs.Length, ["total_tokens"] = inputs.Length },
        });
    }

    /// <summary>A bag of hashed words, not normalised (the client must normalise): texts sharing words are close.</summary>
    public static float[] Vector(string text, int dimensions)
    {
        var vector = new float[dimensions];
        vector[0] = 0.5f;
        foreach (var word in text.ToLowerInvariant().Split([' ', '\n', ':', '.', ',', '?'], StringSplitOptions.RemoveEmptyEntries))
        {
            uint hash = 2166136261;
            foreach (var c in word) hash = (hash ^ c) * 16777619;
            vector[hash % (uint)dimensions] += 3;
        }
        return vector;
    }

    /// <summary>The default generation: every piece as one event, then the finish reason, usage and [DONE].</summary>
    public Task StreamPiecesAsync(HttpListenerContext context, JsonObject body) => StreamAsync(context, body, Pieces, FinishReason, cutAfter: null);

    /// <summary>Streams <paramref name="pieces"/>; with <paramref name="cutAfter"/>, aborts the connection after that many.</summary>
    public static async Task StreamAsync(HttpListenerContext context, JsonObject body, IReadOnlyList<string> pieces, string finishReason, int? cutAfter)
    {
        var chat = context.Request.Url!.AbsolutePath.Contains("chat", StringComparison.Ordinal);
        context.Response.StatusCode = 200;
        context.Response.ContentType = "text/event-stream";
        context.Response.SendChunked = true;
        var output = context.Response.OutputStream;
        for (var i = 0; i < pieces.Count; i++)
        {
            if (cutAfter == i)
            {
                context.Response.Abort();
                return;
            }
            await WriteEventAsync(output, Chunk(chat, pieces[i], null));
        }
        await WriteEventAsync(output, Chunk(chat, "", finishReason));
        await WriteEventAsync(output, new JsonObject
        {
            ["id"] = "x", ["object"] = chat ? "chat.completion.chunk" : "text_completion", ["created"] = 0, ["model"] = body["model"]?.GetValue<string>(),
            ["choices"] = new JsonArray(),
            ["usage"] = new JsonObject { ["prompt_tokens"] = 7, ["completion_tokens"] = pieces.Count, ["total_tokens"] = 7 + pieces.Count },
        }.ToJsonString());
        await output.WriteAsync(Encoding.UTF8.GetBytes("data: [DONE]\n\n"));
        context.Response.Close();
    }

    public static string Chunk(bool chat, string text, string? finishReason)
    {
        JsonObject choice = chat
            ? new JsonObject { ["index"] = 0, ["delta"] = new JsonObject { ["content"] = text }, ["finish_reason"] = finishReason }
            : new JsonObject { ["index"] = 0, ["text"] = text, ["finish_reason"] = finishReason };
        return new JsonObject
        {
            ["id"] = "x", ["object"] = chat ? "chat.completion.chunk" : "text_completion", ["created"] = 0, ["model"] = "test-model",
            ["choices"] = new JsonArray(choice),
        }.ToJsonString();
    }

    public static async Task WriteEventAsync(Stream output, string json)
    {
        await output.WriteAsync(Encoding.UTF8.GetBytes($"data: {json}\n\n"));
        await output.FlushAsync();
    }

    public static async Task WriteJsonAsync(HttpListenerContext context, int status, JsonObject body, IDictionary<string, string>? headers = null)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        foreach (var (name, value) in headers ?? new Dictionary<string, string>()) context.Response.Headers[name] = value;
        var bytes = Encoding.UTF8.GetBytes(body.ToJsonString());
        context.Response.ContentLength64 = bytes.Length;
        await context.Response.OutputStream.WriteAsync(bytes);
        context.Response.Close();
    }

    public static JsonObject Error(string message) => new() { ["error"] = new JsonObject { ["message"] = message, ["type"] = "test" } };

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
        try { _loop.Wait(TimeSpan.FromSeconds(5)); } catch (AggregateException) { }
    }
}
