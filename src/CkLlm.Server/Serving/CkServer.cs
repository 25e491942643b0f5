using CkLlm.Engine.Model;
using CkLlm.Engine.Session;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace CkLlm.Server.Serving;

/// <summary>
/// A running server (Start-CkServer's output, type name CkServer). It runs in this process, on the session's loaded
/// models (no second copy of any weights), until <see cref="StopAsync"/>. Servers are process-wide, like the session.
/// </summary>
public sealed class CkServer
{
    private static readonly object Gate = new();
    private static readonly List<CkServer> Running = [];
    private static int _lastId;

    private readonly WebApplication _app;
    private readonly ServingContext _serving;
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _stopping;

    private CkServer(int id, WebApplication app, ServingContext serving, Uri url)
    {
        Id = id;
        _app = app;
        _serving = serving;
        Url = url;
    }

    /// <summary>The servers running in this process, oldest first.</summary>
    public static IReadOnlyList<CkServer> Servers
    {
        get { lock (Gate) return Running.ToArray(); }
    }

    public int Id { get; }

    /// <summary>The base URL clients use; the OpenAI API is under /v1 (an SDK's base URL is Url + "v1").</summary>
    public Uri Url { get; }

    public string Address => _serving.Options.Address;
    public int Port => Url.Port;
    public bool RequiresApiKey => _serving.Options.ApiKey is not null;
    public IReadOnlyList<string> KnowledgeBases => _serving.KnowledgeBaseDirectories;
    public IReadOnlyList<string> Models => _serving.ModelIds;
    public DateTimeOffset Started => _serving.Started;
    public long Requests => _serving.Requests;
    public long FailedRequests => _serving.FailedRequests;
    public int ActiveRequests => _serving.Admission.Admitted;
    public int MaxConcurrentRequests => _serving.Options.MaxConcurrentRequests;
    public int MaxQueuedRequests => _serving.Options.MaxQueuedRequests;
    /// <summary>Per served llama.cpp model: steps, tokens per decode and where each step's time went (continuous
    /// batching at work).</summary>
    public IReadOnlyList<BatchingStatistics> Batching => _serving.Generation.Statistics;
    public string State => _stopped.Task.IsCompleted ? "Stopped" : Volatile.Read(ref _stopping) != 0 ? "Stopping" : "Running";

    /// <summary>Completes when the server has stopped.</summary>
    public Task Stopped => _stopped.Task;

    /// <summary>Starts serving <paramref name="session"/>.</summary>
    /// <exception cref="UnsafeBindingException">A non-loopback address without a key.</exception>
    /// <exception cref="IOException">The address or port is in use.</exception>
    public static async Task<CkServer> StartAsync(CkSession session, CkServerOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        // Native log to the engine's queue (not stderr) before any request can reach llama.cpp.
        NativeBackend.EnsureInitialized();
        var knowledge = ServedKnowledgeBase.OpenAll(session, options.KnowledgeBases);
        var serving = new ServingContext(session, options, knowledge);
        WebApplication? app = null;
        try
        {
            app = ServerApp.Build(serving);
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
            var bound = app.Services.GetService(typeof(IServer)) is IServer server
                ? server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault() : null;
            var url = new Uri(bound ?? $"http://{options.Address}:{options.Port}/");
            if (!url.AbsoluteUri.EndsWith('/')) url = new Uri(url.AbsoluteUri + "/");
            CkServer started;
            lock (Gate)
            {
                started = new CkServer(++_lastId, app, serving, LoopbackUrl(url, options));
                Running.Add(started);
            }
            return started;
        }
        catch
        {
            if (app is not null) await app.DisposeAsync().ConfigureAwait(false);
            serving.Dispose();
            throw;
        }
    }

    /// <summary>Stops accepting requests, lets running ones end (up to <paramref name="grace"/>, then cancels them),
    /// and releases the knowledge bases. Safe to call more than once.</summary>
    public async Task StopAsync(TimeSpan? grace = null)
    {
        if (Interlocked.Exchange(ref _stopping, 1) != 0)
        {
            await _stopped.Task.ConfigureAwait(false);
            return;
        }
        try
        {
            using var timeout = new CancellationTokenSource(grace ?? TimeSpan.FromSeconds(5));
            await _app.StopAsync(timeout.Token).ConfigureAwait(false);
            await _app.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            lock (Gate) Running.Remove(this);
            _serving.Dispose();
            _stopped.TrySetResult();
        }
    }

    /// <summary>Stops every server of the process (the module is removed).</summary>
    public static void StopAll()
    {
        foreach (var server in Servers) server.StopAsync(TimeSpan.FromSeconds(2)).GetAwaiter().GetResult();
    }

    public override string ToString() => $"CkServer {Id} {Url}";

    /// <summary>Kestrel reports "0.0.0.0" for every interface: clients on this machine reach it at 127.0.0.1.</summary>
    private static Uri LoopbackUrl(Uri bound, CkServerOptions options) =>
        bound.Host is "0.0.0.0" or "[::]" or "+" or "*" ? new UriBuilder(bound) { Host = "127.0.0.1" }.Uri : bound;
}
