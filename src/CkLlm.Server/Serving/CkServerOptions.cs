using System.Net;

namespace CkLlm.Server.Serving;

/// <summary>How Start-CkServer serves the session.</summary>
public sealed record CkServerOptions
{
    public const int DefaultPort = 8080;
    public const string DefaultAddress = "127.0.0.1";

    /// <summary>TCP port; 0 picks a free one (the running server reports it).</summary>
    public int Port { get; init; } = DefaultPort;

    /// <summary>An IP address, "localhost", or "*" / "0.0.0.0" for every interface.</summary>
    public string Address { get; init; } = DefaultAddress;

    /// <summary>Bearer key every request must carry; null: no key (loopback only unless <see cref="AllowRemoteWithoutKey"/>).</summary>
    public string? ApiKey { get; init; }

    /// <summary>Knowledge base directories served as rag/&lt;folder name&gt;.</summary>
    public IReadOnlyList<string> KnowledgeBases { get; init; } = [];

    /// <summary>Serve a non-loopback address without a key (-Force).</summary>
    public bool AllowRemoteWithoutKey { get; init; }

    /// <summary>Generations decoded at once per model (the continuous batch); also the requests running at once.</summary>
    public int MaxConcurrentRequests { get; init; } = 8;

    /// <summary>Requests waiting for a slot beyond those running; one more gets 503.</summary>
    public int MaxQueuedRequests { get; init; } = 32;

    /// <summary>Largest request body; a bigger one gets 413.</summary>
    public long MaxRequestBodyBytes { get; init; } = 8 * 1024 * 1024;

    /// <summary>The address to bind: "localhost" is the loopback, "*" every interface.</summary>
    /// <exception cref="ArgumentException">Not an IP address.</exception>
    public IPAddress BindAddress => Address.Trim().ToLowerInvariant() switch
    {
        "localhost" => IPAddress.Loopback,
        "*" or "+" => IPAddress.Any,
        var text => IPAddress.TryParse(text, out var ip)
            ? ip
            : throw new ArgumentException($"'{Address}' is not an IP address. Use an address such as 127.0.0.1, 0.0.0.0 or ::1 (or 'localhost', '*').", nameof(Address)),
    };

    /// <summary>Throws when the options are unusable or unsafe: a port out of range, limits below 1, or a
    /// non-loopback address without a key (unless allowed).</summary>
    public void Validate()
    {
        if (Port is < 0 or > 65535) throw new ArgumentOutOfRangeException(nameof(Port), "Port must be between 0 and 65535.");
        if (MaxConcurrentRequests < 1) throw new ArgumentOutOfRangeException(nameof(MaxConcurrentRequests), "MaxConcurrentRequests must be at least 1.");
        if (MaxQueuedRequests < 0) throw new ArgumentOutOfRangeException(nameof(MaxQueuedRequests), "MaxQueuedRequests must not be negative.");
        if (ApiKey is { } key && string.IsNullOrWhiteSpace(key)) throw new ArgumentException("The API key is empty.", nameof(ApiKey));
        if (!IPAddress.IsLoopback(BindAddress) && ApiKey is null && !AllowRemoteWithoutKey)
            throw new UnsafeBindingException(
                $"Serving on {Address} without an API key would let anyone who can reach this machine use its models. Give -ApiKey, or -Force to serve without one.");
    }
}

/// <summary>A non-loopback address without an API key (and without -Force).</summary>
public sealed class UnsafeBindingException(string message) : Exception(message);
