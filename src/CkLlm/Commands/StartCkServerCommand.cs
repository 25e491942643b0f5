using System.Management.Automation;
using System.Net;
using System.Runtime.CompilerServices;
using System.Security;
using CkLlm.Engine.Knowledge;
using CkLlm.Server.Serving;

namespace CkLlm.Commands;

/// <summary>Serves the session's loaded models and the given knowledge bases over an OpenAI-compatible HTTP API.</summary>
[Cmdlet(VerbsLifecycle.Start, "CkServer")]
[OutputType(ServerTypeName)]
public sealed class StartCkServerCommand : CkCmdlet
{
    public const string ServerTypeName = "CkServer";

    private static volatile bool _anyStarted;

    [Parameter]
    [ValidateRange(0, 65535)]
    public int Port { get; set; } = 8080;

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string Address { get; set; } = "127.0.0.1";

    [Parameter]
    [ValidateNotNull]
    public SecureString? ApiKey { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[]? KnowledgeBase { get; set; }

    /// <summary>User name and password for knowledge bases on a PostgreSQL server whose URI carries no password.</summary>
    [Parameter]
    [Credential]
    public PSCredential? Credential { get; set; }

    [Parameter]
    [ValidateRange(1, 64)]
    public int MaxConcurrentRequests { get; set; } = 8;

    [Parameter]
    [ValidateRange(0, 10000)]
    public int MaxQueuedRequests { get; set; } = 32;

    [Parameter]
    public SwitchParameter Wait { get; set; }

    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void EndProcessing()
    {
        var server = Start();
        if (server is null) return;
        _anyStarted = true;
        WriteObject(AsServerObject(server));
        if (!Wait) return;

        WriteInformation(new HostInformationMessage { Message = $"Serving on {server.Url} - press Ctrl+C to stop." }, ["PSHOST"]);
        try
        {
            // Until Ctrl+C, or Stop-CkServer from another runspace.
            server.Stopped.Wait(Cancellation);
        }
        catch (OperationCanceledException) when (Cancellation.IsCancellationRequested) { }
        finally
        {
            server.StopAsync().GetAwaiter().GetResult();
        }
    }

    private CkServer? Start()
    {
        var options = new CkServerOptions
        {
            Port = Port,
            Address = Address,
            ApiKey = ApiKey is null ? null : new NetworkCredential(string.Empty, ApiKey).Password,
            KnowledgeBases = (KnowledgeBase ?? []).Select(k => KnowledgeLocation.IsServer(k) ? KnowledgeLocation.Normalize(k) : ResolvePath(k)).ToArray(),
            AllowRemoteWithoutKey = Force,
            MaxConcurrentRequests = MaxConcurrentRequests,
            MaxQueuedRequests = MaxQueuedRequests,
        };
        try
        {
            // A server URI is opened (signed in with -Credential) through the session as every knowledge cmdlet opens
            // it; the server then leases that same instance by its password-free key.
            foreach (var uri in (KnowledgeBase ?? []).Where(KnowledgeLocation.IsServer))
                OpenKnowledgeBase(uri, Credential is null ? null : new KnowledgeBaseOptions { Credential = Credential.GetNetworkCredential() }, mustExist: true);
            return CkServer.StartAsync(SessionHost.Session, options, Cancellation).GetAwaiter().GetResult();
        }
        catch (UnsafeBindingException e)
        {
            ThrowInputError(e, "RemoteWithoutApiKey", ErrorCategory.SecurityError, Address);
        }
        catch (IOException e) when (e.InnerException is System.Net.Sockets.SocketException || e.Message.Contains("address", StringComparison.OrdinalIgnoreCase))
        {
            ThrowInputError(e, "AddressInUse", ErrorCategory.ResourceUnavailable, $"{Address}:{Port}");
        }
        catch (Exception e) when (e is FileNotFoundException or FileLoadException && e.Message.Contains("AspNetCore", StringComparison.Ordinal))
        {
            ThrowInputError(new InvalidOperationException(
                "Start-CkServer needs the ASP.NET Core runtime (Microsoft.AspNetCore.App) of the .NET version pwsh runs on. It comes with the .NET SDK " +
                "and the 'aspnetcore-runtime' packages; a self-contained pwsh has no shared framework to take it from.", e),
                "AspNetCoreRuntimeMissing", ErrorCategory.NotInstalled, null);
        }
        catch (OperationCanceledException) when (Cancellation.IsCancellationRequested) { }
        catch (Exception e) when (EngineErrors.IsEngineError(e))
        {
            ThrowTerminatingError(EngineErrors.ToErrorRecord(e, KnowledgeBase?.Select(KnowledgeLocation.WithoutPassword).ToArray()));
        }
        return null;
    }

    /// <summary>The server with its PowerShell type name (format view CkServer).</summary>
    internal static PSObject AsServerObject(CkServer server)
    {
        var output = PSObject.AsPSObject(server);
        if (output.TypeNames[0] != ServerTypeName) output.TypeNames.Insert(0, ServerTypeName);
        return output;
    }

    /// <summary>Stops every server when the module goes away; touches the server assembly only if a server ever started.</summary>
    internal static void StopAllServers()
    {
        if (_anyStarted) StopAllLoaded();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void StopAllLoaded() => CkServer.StopAll();
}
