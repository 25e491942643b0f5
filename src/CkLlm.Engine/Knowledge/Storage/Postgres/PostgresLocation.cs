using System.Net;
using Npgsql;

namespace CkLlm.Engine.Knowledge.Storage.Postgres;

/// <summary>
/// A parsed <c>postgresql://user[:password]@host[:port]/database?name=kb</c>. The password comes from the URI, else from
/// <see cref="KnowledgeBaseOptions.Credential"/>, else Npgsql's own PGPASSWORD / PGPASSFILE / ~/.pgpass lookup.
/// </summary>
internal sealed record PostgresLocation(string Host, int Port, string Database, string User, string KnowledgeBase, string ConnectionString)
{
    public const int DefaultPort = 5432;
    public const string DefaultKnowledgeBase = "default";

    /// <summary>The URI without its password: what messages, error targets and the session show.</summary>
    public string Display => $"postgresql://{Uri.EscapeDataString(User)}@{HostForUri}:{Port}/{Uri.EscapeDataString(Database)}?name={Uri.EscapeDataString(KnowledgeBase)}";

    public string Endpoint => $"{Host}:{Port}";

    private string HostForUri => Host.Contains(':') ? $"[{Host}]" : Host;

    /// <exception cref="ArgumentException">Not a PostgreSQL URI, or no database in it.</exception>
    public static PostgresLocation Parse(string uri, NetworkCredential? credential)
    {
        if (!KnowledgeLocation.IsServer(uri) || !Uri.TryCreate(uri, UriKind.Absolute, out var parsed) || string.IsNullOrEmpty(parsed.Host))
            throw new ArgumentException($"'{uri}' is not a PostgreSQL URI of the form postgresql://user@host:port/database?name=<knowledge base>.", nameof(uri));
        var database = Uri.UnescapeDataString(parsed.AbsolutePath.TrimStart('/'));
        if (database.Length == 0 || database.Contains('/'))
            throw new ArgumentException($"'{Redact(uri)}' names no database: write postgresql://user@host:port/<database>?name=<knowledge base>.", nameof(uri));
        string? user = null, password = null;
        if (parsed.UserInfo.Length > 0)
        {
            var colon = parsed.UserInfo.IndexOf(':');
            user = Uri.UnescapeDataString(colon < 0 ? parsed.UserInfo : parsed.UserInfo[..colon]);
            if (colon >= 0) password = Uri.UnescapeDataString(parsed.UserInfo[(colon + 1)..]);
        }
        if (credential is not null)
        {
            if (user is null && credential.UserName.Length > 0) user = credential.UserName;
            password ??= credential.Password;
        }
        user ??= Environment.GetEnvironmentVariable("PGUSER") is { Length: > 0 } envUser ? envUser : Environment.UserName;
        var query = ParseQuery(parsed.Query);
        var name = query.GetValueOrDefault("name") is { Length: > 0 } n ? n : DefaultKnowledgeBase;
        var host = parsed.Host.Trim('[', ']');
        var port = parsed.Port > 0 ? parsed.Port : DefaultPort;
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = host, Port = port, Database = database, Username = user, Password = password,
            Timeout = 10, CommandTimeout = 120, ApplicationName = "CkLlm",
            // A knowledge base holds one connection for as long as it is open; a pooled one could be a connection the
            // server dropped in a restart, and the next open would fail on it.
            Pooling = false,
            // The keyword query is cheap to run and its plan large: JIT compiling it would cost more than running it.
            Options = "-c jit=off",
        };
        if (query.GetValueOrDefault("sslmode") is { } ssl) builder.SslMode = Enum.Parse<SslMode>(ssl, ignoreCase: true);
        if (query.GetValueOrDefault("connect_timeout") is { } timeout) builder.Timeout = int.Parse(timeout, System.Globalization.CultureInfo.InvariantCulture);
        return new PostgresLocation(host, port, database, user, name, builder.ConnectionString);
    }

    private static Dictionary<string, string> ParseQuery(string query)
    {
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var pair in query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = pair.IndexOf('=');
            var key = Uri.UnescapeDataString(eq < 0 ? pair : pair[..eq]);
            result[key] = eq < 0 ? "" : Uri.UnescapeDataString(pair[(eq + 1)..].Replace('+', ' '));
        }
        return result;
    }

    /// <summary>The URI with any password replaced, for messages about a URI that did not parse.</summary>
    internal static string Redact(string uri) =>
        System.Text.RegularExpressions.Regex.Replace(uri, "^(postgres(?:ql)?://[^:/@]*):[^@/]*@", "$1:***@", System.Text.RegularExpressions.RegexOptions.IgnoreCase);
}
