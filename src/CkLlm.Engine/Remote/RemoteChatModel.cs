using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;
using CkLlm.Engine.Inference;

namespace CkLlm.Engine.Remote;

/// <summary>
/// A chat/completion model served by an OpenAI-compatible endpoint (vLLM, llama.cpp server, Ollama, Azure OpenAI,
/// another CkLlm): chats go to /v1/chat/completions through the official OpenAI SDK, raw prompts to /v1/completions
/// through the same SDK pipeline. Token counts come from the server's /tokenize when it has one (llama.cpp, vLLM),
/// otherwise from a conservative estimate (<see cref="EstimateTokens"/>), so RAG trims to fit as it does locally.
/// </summary>
public sealed partial class RemoteChatModel : IChatModel
{
    /// <summary>The context window assumed when neither the user nor the server gives one.</summary>
    public const int FallbackContextSize = 2048;

    /// <summary>Tokens added to every count for the server's chat template, which CkLlm cannot see (role headers,
    /// a date line in a system header): more than any common template adds to a short chat.</summary>
    public const int TemplateAllowance = 64;

    private const int CountCacheSize = 256;

    private readonly RemoteEndpoint _endpoint;
    private readonly ConcurrentDictionary<string, int> _counts = new(StringComparer.Ordinal);
    private int _disposed;

    private RemoteChatModel(RemoteEndpoint endpoint, RemoteModelOptions options, int contextSize, string contextSource, bool serverTokenizer)
    {
        _endpoint = endpoint;
        Name = string.IsNullOrWhiteSpace(options.Name) ? options.RemoteModel : options.Name;
        RemoteModel = options.RemoteModel;
        ContextSize = contextSize;
        ContextSizeSource = contextSource;
        TokenCounting = serverTokenizer ? "server" : "estimate";
        HasApiKey = !string.IsNullOrEmpty(options.ApiKey);
    }

    public string Name { get; }

    /// <summary>"Remote" (a llama.cpp model in this process is "Local").</summary>
    public string Kind => "Remote";

    /// <summary>The API base address (no credentials).</summary>
    public string Endpoint => _endpoint.Display;

    /// <summary>The server's model id.</summary>
    public string RemoteModel { get; }

    public int ContextSize { get; }

    /// <summary>Where <see cref="ContextSize"/> came from: "given" (-ContextSize), "server" (its model list or /props) or "default".</summary>
    public string ContextSizeSource { get; }

    /// <summary>"server" (its /tokenize endpoint, plus <see cref="TemplateAllowance"/>) or "estimate" (<see cref="EstimateTokens"/>).</summary>
    public string TokenCounting { get; }

    /// <summary>Whether an API key is sent (the key itself is not kept anywhere it can be read).</summary>
    public bool HasApiKey { get; }

    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>
    /// Connects: checks that the server answers, accepts the key and serves <see cref="RemoteModelOptions.RemoteModel"/>
    /// (when it lists its models), learns the context window unless given, and whether it offers /tokenize.
    /// </summary>
    /// <exception cref="RemoteModelException">Unreachable, refused, or the model is not served.</exception>
    public static async Task<RemoteChatModel> ConnectAsync(RemoteModelOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var endpoint = new RemoteEndpoint(options);
        var served = await ServedContextSizeAsync(endpoint, options.RemoteModel, cancellationToken).ConfigureAwait(false);
        var (contextSize, source) = options.ContextSize is { } given ? (given, "given")
            : served is { } fromServer ? (fromServer, "server")
            : (FallbackContextSize, "default");
        var tokenizer = await TokenizeAsync(endpoint, options.RemoteModel, "CkLlm", cancellationToken).ConfigureAwait(false) is not null;
        return new RemoteChatModel(endpoint, options, contextSize, source, tokenizer);
    }

    /// <summary>Connects synchronously (see <see cref="ConnectAsync"/>).</summary>
    public static RemoteChatModel Connect(RemoteModelOptions options, CancellationToken cancellationToken = default) =>
        Task.Run(() => ConnectAsync(options, cancellationToken), cancellationToken).GetAwaiter().GetResult();

    /// <summary>
    /// The conservative count used without a server tokenizer: one token per UTF-8 byte plus <see cref="TemplateAllowance"/>.
    /// Every BPE and SentencePiece vocabulary in use covers at least one byte per token, so the real count is never higher;
    /// real text is 3-4 bytes per token, so RAG fits fewer passages than it could (give the server a tokenizer, or a larger -ContextSize).
    /// </summary>
    public static int EstimateTokens(string text) => Encoding.UTF8.GetByteCount(text ?? string.Empty) + TemplateAllowance;

    public int CountTokens(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        if (TokenCounting != "server") return EstimateTokens(prompt);
        if (_counts.TryGetValue(prompt, out var cached)) return cached;
        var tokens = Task.Run(() => TokenizeAsync(_endpoint, RemoteModel, prompt, CancellationToken.None)).GetAwaiter().GetResult();
        // A tokenizer that stopped answering: fall back to the estimate rather than under-count.
        var count = tokens is { } n ? n + TemplateAllowance : EstimateTokens(prompt);
        if (_counts.Count >= CountCacheSize) _counts.Clear();
        _counts[prompt] = count;
        return count;
    }

    /// <summary>
    /// A chat as text (the fallback ChatML rendering, for counting and for the result's Prompt): the server applies its
    /// own chat template, which CkLlm cannot see. A raw prompt is sent as it is.
    /// </summary>
    public FormattedPrompt Format(CompletionRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!request.IsChat) return new FormattedPrompt(request.Prompt ?? string.Empty, "none", []);
        return new FormattedPrompt(ChatFormatter.ApplyFallback(ChatFormatter.Messages(request)), "remote", []);
    }

    public override string ToString() => $"{Name} ({RemoteModel} at {Endpoint})";

    public void Dispose() => Interlocked.Exchange(ref _disposed, 1);

    /// <summary>The context window the server reports for the model (vLLM's max_model_len, context_length, llama.cpp's
    /// /props n_ctx); null when it reports none. Throws when the server lists its models and this one is not among them.</summary>
    private static async Task<int?> ServedContextSizeAsync(RemoteEndpoint endpoint, string model, CancellationToken cancellationToken)
    {
        JsonNode? list;
        try
        {
            using var response = await endpoint.SendAsync("GET", new Uri(endpoint.BaseUri, "models"), null, false, cancellationToken).ConfigureAwait(false);
            if (response.Status == 404) return await PropsContextSizeAsync(endpoint, cancellationToken).ConfigureAwait(false);
            if (response.IsError) throw endpoint.FromStatus(response.Status, response, "model list");
            list = JsonNode.Parse(response.Content.ToString());
        }
        catch (RemoteModelException) { throw; }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested) { throw; }
        catch (Exception e)
        {
            throw endpoint.Translate(e, "model list", cancellationToken);
        }
        if (list?["data"] is not JsonArray models) return await PropsContextSizeAsync(endpoint, cancellationToken).ConfigureAwait(false);
        var entry = models.OfType<JsonObject>().FirstOrDefault(m => string.Equals(m["id"]?.ToString(), model, StringComparison.Ordinal));
        if (entry is null)
        {
            var ids = models.OfType<JsonObject>().Select(m => m["id"]?.ToString()).Where(id => id is not null).Take(20).ToArray();
            throw new RemoteModelNotFoundException(endpoint.Clean(
                $"'{endpoint.Display}' does not serve a model '{model}'. It serves: {(ids.Length == 0 ? "none" : string.Join(", ", ids))}."), endpoint.Display) { Status = 404 };
        }
        return PositiveInt(entry["max_model_len"]) ?? PositiveInt(entry["context_length"]) ?? PositiveInt(entry["context_window"])
            ?? PositiveInt(entry["meta"]?["n_ctx"]) ?? await PropsContextSizeAsync(endpoint, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>llama.cpp server's GET /props: default_generation_settings.n_ctx (the slot's real window).</summary>
    private static async Task<int?> PropsContextSizeAsync(RemoteEndpoint endpoint, CancellationToken cancellationToken)
    {
        try
        {
            using var response = await endpoint.SendAsync("GET", new Uri(endpoint.ServerRoot, "props"), null, false, cancellationToken).ConfigureAwait(false);
            if (response.IsError) return null;
            var props = JsonNode.Parse(response.Content.ToString());
            return PositiveInt(props?["default_generation_settings"]?["n_ctx"]) ?? PositiveInt(props?["n_ctx"]);
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or FormatException) { return null; }
    }

    /// <summary>The token count of <paramref name="text"/> from the server's /tokenize (llama.cpp: "content", vLLM: "prompt"
    /// and "model"; both answer with "tokens"), or null when it has none.</summary>
    private static async Task<int?> TokenizeAsync(RemoteEndpoint endpoint, string model, string text, CancellationToken cancellationToken)
    {
        var body = new JsonObject { ["content"] = text, ["prompt"] = text, ["model"] = model, ["add_special"] = true };
        try
        {
            using var response = await endpoint.SendAsync("POST", new Uri(endpoint.ServerRoot, "tokenize"), body, false, cancellationToken).ConfigureAwait(false);
            if (response.IsError) return null;
            var json = JsonNode.Parse(response.Content.ToString());
            return json?["tokens"] is JsonArray tokens ? tokens.Count : PositiveInt(json?["count"]);
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or FormatException or System.ClientModel.ClientResultException or IOException or System.Net.Http.HttpRequestException)
        {
            return null;
        }
    }

    private static int? PositiveInt(JsonNode? node)
    {
        try { return node is JsonValue value && value.TryGetValue<long>(out var n) && n is > 0 and <= int.MaxValue ? (int)n : null; }
        catch (FormatException) { return null; }
    }
}
