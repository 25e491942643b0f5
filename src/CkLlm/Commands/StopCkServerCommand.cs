using System.Management.Automation;

namespace CkLlm.Commands;

/// <summary>Stops servers started by Start-CkServer: running requests get a few seconds to finish, then the port and
/// the knowledge bases are released. The loaded models stay in the session.</summary>
[Cmdlet(VerbsLifecycle.Stop, "CkServer", SupportsShouldProcess = true)]
[OutputType(StartCkServerCommand.ServerTypeName)]
public sealed class StopCkServerCommand : CkCmdlet
{
    /// <summary>Ids of the servers to stop (pipe Get-CkServer); none: every server.</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    public int[]? Id { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var server in ServerSelection.Select(this, Id))
        {
            if (!ShouldProcess(server.Url.ToString(), "Stop CkLlm server")) continue;
            server.StopAsync().GetAwaiter().GetResult();
            if (PassThru) WriteObject(StartCkServerCommand.AsServerObject(server));
        }
    }
}
