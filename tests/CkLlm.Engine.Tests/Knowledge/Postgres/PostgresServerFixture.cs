using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace CkLlm.Engine.Tests.Knowledge.Postgres;

/// <summary>
/// A throwaway PostgreSQL cluster for the server-store tests: initdb + pg_ctl from the installed PostgreSQL (run as the
/// <c>postgres</c> user through runuser when the tests run as root, since initdb refuses root) in a temp directory, on a
/// free port, password authentication (scram) for user <c>ck</c>; stopped and deleted on Dispose.
/// </summary>
public sealed class PostgresServerFixture : IDisposable
{
    public const string User = "ck";
    public const string Password = "ck-test-secret";
    private readonly string _bin;
    private readonly string _root;
    private readonly bool _asRoot = Environment.UserName == "root";

    public PostgresServerFixture()
    {
        _bin = FindBin() ?? throw new InvalidOperationException("PostgreSQL server binaries (initdb) not found under /usr/lib/postgresql/*/bin.");
        _root = Directory.CreateTempSubdirectory("ckllm-pg-").FullName;
        Port = FreePort();
        var pwfile = Path.Combine(_root, "pw");
        File.WriteAllText(pwfile, Password);
        if (_asRoot) Run("chown", "-R", "postgres", _root);
        Pg("initdb", "-D", Data, "-A", "scram-sha-256", "-U", User, "--pwfile", pwfile, "-E", "UTF8", "--no-sync");
        Pg("pg_ctl", "-D", Data, "-o", $"-p {Port} -k {_root} -c listen_addresses=127.0.0.1 -c fsync=off", "-l", Path.Combine(_root, "log"), "start", "-w");
    }

    public int Port { get; }

    private string Data => Path.Combine(_root, "data");

    /// <summary>A knowledge base URI with the password in it (each test uses its own name, so they do not meet).</summary>
    public string Uri(string name, string database = "postgres") => $"postgresql://{User}:{Password}@127.0.0.1:{Port}/{database}?name={name}";

    /// <summary>The same without password.</summary>
    public string UriWithoutPassword(string name, string database = "postgres") => $"postgresql://{User}@127.0.0.1:{Port}/{database}?name={name}";

    /// <summary>Stops the server (immediate: like a crash for clients) and starts it again.</summary>
    public void Stop() => Pg("pg_ctl", "-D", Data, "stop", "-m", "immediate");

    public void Start() => Pg("pg_ctl", "-D", Data, "-o", $"-p {Port} -k {_root} -c listen_addresses=127.0.0.1 -c fsync=off", "-l", Path.Combine(_root, "log"), "start", "-w");

    private static string? FindBin() =>
        Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).Where(b => File.Exists(Path.Combine(b, "initdb"))).OrderDescending().FirstOrDefault()
            : null;

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private void Pg(string tool, params string[] args)
    {
        var exe = Path.Combine(_bin, tool);
        if (_asRoot) Run("runuser", ["-u", "postgres", "--", exe, .. args]);
        else Run(exe, args);
    }

    private static void Run(string exe, params string[] args)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{exe} {string.Join(' ', args)} failed ({p.ExitCode}): {stderr}{stdout.Result}");
    }

    public void Dispose()
    {
        try { Pg("pg_ctl", "-D", Data, "stop", "-m", "fast"); } catch (InvalidOperationException) { }
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }
}

[CollectionDefinition(Name)]
public sealed class PostgresCollection : ICollectionFixture<PostgresServerFixture>
{
    public const string Name = "PostgreSQL server";
}
