namespace CkLlm.Engine.Knowledge;

/// <summary>
/// Where a knowledge base lives: a directory (SQLite + FTS5 + USearch file), or a PostgreSQL database named by a URI,
/// <c>postgresql://user[:password]@host[:port]/database?name=&lt;kb&gt;</c>, that many machines share (several knowledge
/// bases per database, told apart by <c>name</c>, default "default").
/// </summary>
public static class KnowledgeLocation
{
    /// <summary>True for a <c>postgresql://</c> or <c>postgres://</c> URI (anything else is a directory path).</summary>
    public static bool IsServer(string? location) =>
        location is not null && (location.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase) ||
                                 location.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase));

    /// <summary>The location as it may be shown: a server URI's password is masked (even in a URI that does not parse).</summary>
    public static string WithoutPassword(string location) => IsServer(location) ? Storage.Postgres.PostgresLocation.Redact(location) : location;

    /// <summary>The form sessions key open knowledge bases by: a full directory path, or the URI without its password.</summary>
    public static string Normalize(string location) =>
        IsServer(location) ? Storage.Postgres.PostgresLocation.Parse(location, null).Display : Path.GetFullPath(location);

    /// <summary>A short name for the knowledge base: the folder's name, or a server URI's <c>name</c> (what a server
    /// serves it as).</summary>
    public static string ShortName(string location) =>
        IsServer(location) ? Storage.Postgres.PostgresLocation.Parse(location, null).KnowledgeBase
        : Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(location)));
}

/// <summary>The database server of a knowledge base cannot be reached (host and port in the message).</summary>
public sealed class KnowledgeServerUnreachableException(string message, string endpoint, Exception? inner = null) : KnowledgeBaseException(message, inner)
{
    /// <summary>host:port.</summary>
    public string Endpoint { get; } = endpoint;
}

/// <summary>The database server refused the user name or password.</summary>
public sealed class KnowledgeServerAuthenticationException(string message, Exception? inner = null) : KnowledgeBaseException(message, inner);
