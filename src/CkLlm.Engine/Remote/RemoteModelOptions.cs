namespace CkLlm.Engine.Remote;

/// <summary>How to reach an OpenAI-compatible endpoint and which of its models to use.</summary>
public sealed record RemoteModelOptions
{
    /// <summary>The API's base address. A bare server address (no path) gets "/v1" appended, as every OpenAI-compatible
    /// server serves under it; any other path is used as given (e.g. Azure OpenAI's ".../openai/v1").</summary>
    public required Uri Endpoint { get; init; }

    /// <summary>The server's model id (the "model" field of every request).</summary>
    public required string RemoteModel { get; init; }

    /// <summary>The name the session knows it by; default: the model id.</summary>
    public string? Name { get; init; }

    /// <summary>Sent as "Authorization: Bearer"; never shown, logged or written anywhere. Null: no key (local servers).</summary>
    public string? ApiKey { get; init; }

    /// <summary>The context window in tokens; null: what the server reports, else <see cref="RemoteChatModel.FallbackContextSize"/>.</summary>
    public int? ContextSize { get; init; }

    /// <summary>Longest wait for one network operation (connecting, the response headers, each read of a stream).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(100);

    /// <summary>Retries of a request answered 429 or 503 (waiting as Retry-After says, else with exponential backoff).</summary>
    public int MaxRetries { get; init; } = 3;

    /// <summary>A Retry-After longer than this is not waited for: the request fails at once with the time to retry.</summary>
    public TimeSpan MaxRetryAfter { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Throws when a value is out of range (before any request).</summary>
    public void Validate()
    {
        if (!Endpoint.IsAbsoluteUri || Endpoint.Scheme is not ("http" or "https"))
            throw new ArgumentException($"The endpoint must be an absolute http or https address, not '{Endpoint}'.", nameof(Endpoint));
        if (!string.IsNullOrEmpty(Endpoint.UserInfo))
            throw new ArgumentException("Put the API key in -ApiKey, not in the endpoint address.", nameof(Endpoint));
        if (string.IsNullOrWhiteSpace(RemoteModel)) throw new ArgumentException("The remote model id is empty.", nameof(RemoteModel));
        if (ContextSize is < 16) throw new ArgumentOutOfRangeException(nameof(ContextSize), "ContextSize must be at least 16 tokens.");
        if (Timeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(Timeout), "Timeout must be positive.");
        if (MaxRetries < 0) throw new ArgumentOutOfRangeException(nameof(MaxRetries), "MaxRetries must not be negative.");
    }
}
