namespace CkLlm.Engine.Remote;

/// <summary>A remote model's request failed. <see cref="Endpoint"/> is the address without credentials; no message
/// carries the API key.</summary>
public class RemoteModelException : Exception
{
    public RemoteModelException(string message, string endpoint, Exception? inner = null) : base(message, inner) => Endpoint = endpoint;

    public RemoteModelException() : this("The remote model failed.", "") { }

    public RemoteModelException(string message) : this(message, "") { }

    public RemoteModelException(string message, Exception inner) : this(message, "", inner) { }

    public string Endpoint { get; }

    /// <summary>The HTTP status the server answered, or null when there was no answer.</summary>
    public int? Status { get; init; }
}

/// <summary>The server could not be reached (refused, unknown host, reset before answering).</summary>
public sealed class RemoteConnectionException(string message, string endpoint, Exception? inner = null) : RemoteModelException(message, endpoint, inner);

/// <summary>401: the key is missing or wrong.</summary>
public sealed class RemoteAuthenticationException(string message, string endpoint, Exception? inner = null) : RemoteModelException(message, endpoint, inner);

/// <summary>403: the key is valid but may not use this model or endpoint.</summary>
public sealed class RemotePermissionException(string message, string endpoint, Exception? inner = null) : RemoteModelException(message, endpoint, inner);

/// <summary>404, or a model list without the model: the server does not serve this model id.</summary>
public sealed class RemoteModelNotFoundException(string message, string endpoint, Exception? inner = null) : RemoteModelException(message, endpoint, inner);

/// <summary>429 after the retries (or with a Retry-After longer than the longest wait): <see cref="RetryAfter"/> says when to try again.</summary>
public sealed class RemoteRateLimitException(string message, string endpoint, TimeSpan? retryAfter, Exception? inner = null)
    : RemoteModelException(message, endpoint, inner)
{
    public TimeSpan? RetryAfter { get; } = retryAfter;
}

/// <summary>No answer (or no more of a streamed answer) within the timeout.</summary>
public sealed class RemoteTimeoutException(string message, string endpoint, Exception? inner = null) : RemoteModelException(message, endpoint, inner)
{
    /// <summary>Text received before the stream stalled (empty when none).</summary>
    public string PartialText { get; init; } = "";
}

/// <summary>The streamed answer broke off (server stopped, connection cut) before it ended; <see cref="PartialText"/> holds what arrived.</summary>
public sealed class RemoteStreamInterruptedException(string message, string endpoint, Exception? inner = null) : RemoteModelException(message, endpoint, inner)
{
    public string PartialText { get; init; } = "";
}

/// <summary>A request parameter the remote API cannot honour (a GBNF grammar, sampling fields the OpenAI API lacks).</summary>
public sealed class RemoteParameterNotSupportedException(string message, string parameter) : NotSupportedException(message)
{
    public string Parameter { get; } = parameter;
}
