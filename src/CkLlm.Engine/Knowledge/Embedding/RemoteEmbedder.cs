using System.Collections.Concurrent;
using System.Globalization;
using System.Numerics.Tensors;
using System.Text;
using CkLlm.Engine.Remote;
using OpenAI.Embeddings;

namespace CkLlm.Engine.Knowledge.Embedding;

/// <summary>
/// An embedding model served by an OpenAI-compatible /v1/embeddings endpoint (vLLM, llama.cpp server, Ollama, Azure
/// OpenAI, another CkLlm), called through the official OpenAI SDK with the remote chat model's pipeline: the same
/// timeout, retries on 429/503 and error types (<see cref="RemoteModelException"/>).
/// <para>Its identity is the endpoint, the model id and the vector length, as a locator
/// "remote:&lt;api base&gt;?model=&lt;id&gt;&amp;dimensions=&lt;n&gt;" (the key is never part of it). A locator without
/// the dimensions (what Add-CkKnowledge asks for) makes one request to learn them; the recorded locator does not.</para>
/// <para>The key is looked up for every request: the one given in this process for the endpoint
/// (<see cref="RememberKey"/>), else the environment variable <see cref="ApiKeyVariable"/>, else none. So a knowledge
/// base opened before the key was given uses it as soon as it is.</para>
/// </summary>
public sealed class RemoteEmbedder : IEmbedder
{
    /// <summary>The locator prefix that names a remote embedder.</summary>
    public const string Scheme = "remote:";

    /// <summary>The environment variable holding the key for remote embedding endpoints not given one in this process.</summary>
    public const string ApiKeyVariable = "CKLLM_EMBEDDING_API_KEY";

    /// <summary>The input window assumed for the remote model (BERT-style embedders take 512 tokens; larger ones more):
    /// chunks stay under it unless -ChunkSize asks for more.</summary>
    public const int AssumedMaxTokens = 512;

    /// <summary>Texts per /v1/embeddings request (OpenAI accepts 2,048; smaller requests keep one failure cheap).</summary>
    public const int MaxInputsPerRequest = 64;

    /// <summary>Characters per request: bounds the body for servers with a small request limit.</summary>
    public const int MaxCharactersPerRequest = 256 * 1024;

    private const string ProbeText = "CkLlm";
    private static readonly ConcurrentDictionary<string, string> Keys = new(StringComparer.OrdinalIgnoreCase);

    private readonly Uri _endpoint;
    private readonly string _model;
    private readonly object _gate = new();
    private (string? Key, RemoteEndpoint Endpoint)? _current;

    private RemoteEmbedder(Uri endpoint, string model, int? dimensions, CancellationToken cancellationToken)
    {
        _endpoint = endpoint;
        _model = model;
        var display = Current().Display;
        Dimensions = dimensions ?? ProbeDimensions(cancellationToken);
        Id = Locator = LocatorFor(display, model, Dimensions);
        Endpoint = display;
    }

    /// <summary>The API base address (no credentials).</summary>
    public string Endpoint { get; }

    /// <summary>The server's embedding model id.</summary>
    public string RemoteModel => _model;

    public string Id { get; }
    public string Locator { get; }
    public int Dimensions { get; }
    public int MaxTokens => AssumedMaxTokens;

    /// <summary>The locator Add-CkKnowledge passes for an endpoint and model (the dimensions are learnt on open).</summary>
    public static string LocatorFor(Uri endpoint, string model)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentException.ThrowIfNullOrWhiteSpace(model);
        return LocatorFor(RemoteEndpoint.DisplayOf(endpoint), model, null);
    }

    private static string LocatorFor(string apiBase, string model, int? dimensions) =>
        $"{Scheme}{apiBase}?model={Uri.EscapeDataString(model)}"
        + (dimensions is { } n ? $"&dimensions={n.ToString(CultureInfo.InvariantCulture)}" : "");

    /// <summary>The embedder a locator names (see the class remarks); the one <see cref="EmbedderRegistry"/> calls.</summary>
    /// <exception cref="ArgumentException">Not a remote embedder locator.</exception>
    /// <exception cref="RemoteModelException">Without dimensions: the endpoint could not be asked for them.</exception>
    public static RemoteEmbedder FromLocator(string locator) => FromLocator(locator, CancellationToken.None);

    public static RemoteEmbedder FromLocator(string locator, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(locator);
        if (!locator.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase)
            || !Uri.TryCreate(locator[Scheme.Length..], UriKind.Absolute, out var address))
            throw new ArgumentException($"'{locator}' is not a remote embedder ({Scheme}<endpoint>?model=<id>).", nameof(locator));
        string? model = null;
        int? dimensions = null;
        foreach (var pair in address.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var (name, value) = pair.IndexOf('=', StringComparison.Ordinal) is var at and >= 0
                ? (pair[..at], Uri.UnescapeDataString(pair[(at + 1)..])) : (pair, "");
            if (name == "model") model = value;
            else if (name == "dimensions" && int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0) dimensions = n;
        }
        if (string.IsNullOrWhiteSpace(model)) throw new ArgumentException($"The remote embedder '{locator}' names no model (?model=<id>).", nameof(locator));
        var endpoint = new UriBuilder(address) { Query = "" }.Uri;
        return new RemoteEmbedder(endpoint, model, dimensions, cancellationToken);
    }

    /// <summary>Uses <paramref name="apiKey"/> for every remote embedder of <paramref name="endpoint"/> in this process
    /// (kept in memory only); null or empty forgets it.</summary>
    public static void RememberKey(Uri endpoint, string? apiKey)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var key = KeyName(endpoint);
        if (string.IsNullOrEmpty(apiKey)) Keys.TryRemove(key, out _);
        else Keys[key] = apiKey;
    }

    /// <summary>Forgets every key given in this process (session reset).</summary>
    public static void ForgetKeys() => Keys.Clear();

    private static string KeyName(Uri endpoint) => RemoteEndpoint.DisplayOf(endpoint);

    private static string? KeyFor(Uri endpoint) =>
        Keys.TryGetValue(KeyName(endpoint), out var key) ? key
        : Environment.GetEnvironmentVariable(ApiKeyVariable) is { Length: > 0 } variable ? variable
        : null;

    /// <summary>The SDK endpoint with the key that is current now (a new one only when the key changed).</summary>
    private RemoteEndpoint Current()
    {
        var key = KeyFor(_endpoint);
        lock (_gate)
        {
            if (_current is { } current && current.Key == key) return current.Endpoint;
            var endpoint = new RemoteEndpoint(new RemoteModelOptions { Endpoint = _endpoint, RemoteModel = _model, ApiKey = key });
            _current = (key, endpoint);
            return endpoint;
        }
    }

    private string What => $"embedding with '{_model}'";

    private int ProbeDimensions(CancellationToken cancellationToken)
    {
        var vector = Request(Current(), [ProbeText], expectedLength: null, cancellationToken)[0];
        return vector.Length;
    }

    /// <summary>
    /// Without the model's tokenizer: about one token per four UTF-8 bytes of each whitespace-separated word, at least one
    /// per word. BPE and WordPiece vocabularies split English at roughly that rate; rare words split finer, so keep
    /// -ChunkSize well under the remote model's window (docs/remote-models.md).
    /// </summary>
    public int CountTokens(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int tokens = 0, bytes = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            if (Rune.IsWhiteSpace(rune))
            {
                tokens += (bytes + 3) / 4;
                bytes = 0;
            }
            else bytes += rune.Utf8SequenceLength;
        }
        return tokens + (bytes + 3) / 4;
    }

    public float[][] Embed(IReadOnlyList<string> texts, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var result = new float[texts.Count][];
        var endpoint = Current();
        var start = 0;
        while (start < texts.Count)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int end = start, characters = 0;
            // At least one text per request; then as many as fit both limits.
            while (end < texts.Count && end - start < MaxInputsPerRequest
                   && (end == start || characters + texts[end].Length <= MaxCharactersPerRequest))
                characters += texts[end++].Length;
            var vectors = Request(endpoint, texts.Skip(start).Take(end - start).ToList(), Dimensions, cancellationToken);
            vectors.CopyTo(result, start);
            start = end;
        }
        return result;
    }

    /// <summary>One /v1/embeddings request: the vectors in input order, L2-normalised, each checked for length.</summary>
    private float[][] Request(RemoteEndpoint endpoint, IReadOnlyList<string> texts, int? expectedLength, CancellationToken cancellationToken)
    {
        OpenAIEmbeddingCollection collection;
        try
        {
            collection = endpoint.Embeddings.GenerateEmbeddings(texts, FloatEncoding(), cancellationToken).Value;
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            throw endpoint.Translate(e, What, cancellationToken);
        }
        var vectors = new float[texts.Count][];
        foreach (var item in collection)
        {
            if (item.Index < 0 || item.Index >= texts.Count || vectors[item.Index] is not null)
                throw Invalid(endpoint, $"an embedding with index {item.Index} for {texts.Count} inputs");
            var vector = item.ToFloats().ToArray();
            // A vector of another length would be read past its end by the index: never let one through.
            if (vector.Length == 0 || (expectedLength is { } length && vector.Length != length))
                throw Invalid(endpoint, $"a vector of {vector.Length} dimensions where {(expectedLength ?? 1)}{(expectedLength is null ? " or more" : "")} were expected");
            var norm = TensorPrimitives.Norm(vector);
            if (!float.IsFinite(norm) || norm == 0) throw Invalid(endpoint, "a zero or non-finite vector");
            TensorPrimitives.Divide(vector, norm, vector);
            vectors[item.Index] = vector;
        }
        if (Array.IndexOf(vectors, null) is var missing and >= 0) throw Invalid(endpoint, $"no embedding for input {missing}");
        return vectors;
    }

    /// <summary>Asks for JSON floats, the format every server documents, instead of the SDK's base64 (not every
    /// server implements it).</summary>
    private static EmbeddingGenerationOptions FloatEncoding()
    {
        var options = new EmbeddingGenerationOptions();
#pragma warning disable SCME0001 // extra fields are marked experimental in the SDK
        options.Patch.Set("$.encoding_format"u8, "float");
#pragma warning restore SCME0001
        return options;
    }

    private RemoteModelException Invalid(RemoteEndpoint endpoint, string what) =>
        new(endpoint.Clean($"The {What} from '{endpoint.Display}' returned {what}."), endpoint.Display);

    public override string ToString() => $"{_model} at {Endpoint} ({Dimensions} dimensions)";

    /// <summary>Nothing to free: the SDK shares its HTTP connections.</summary>
    public void Dispose() { }
}
