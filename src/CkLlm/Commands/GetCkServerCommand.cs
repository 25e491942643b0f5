using System.Management.Automation;
using CkLlm.Server.Serving;

namespace CkLlm.Commands;

/// <summary>Lists the servers Start-CkServer runs in this process.</summary>
[Cmdlet(VerbsCommon.Get, "CkServer")]
[OutputType(StartCkServerCommand.ServerTypeName)]
public sealed class GetCkServerCommand : CkCmdlet
{
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    public int[]? Id { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var server in ServerSelection.Select(this, Id)) WriteObject(StartCkServerCommand.AsServerObject(server));
    }
}

/// <summary>Servers by id (all when none given); an id that runs nothing is an ObjectNotFound error.</summary>
internal static class ServerSelection
{
    public static IReadOnlyList<CkServer> Select(Cmdlet cmdlet, int[]? ids)
    {
        var servers = CkServer.Servers;
        if (ids is null) return servers;
        var selected = new List<CkServer>();
        foreach (var id in ids)
        {
            var server = servers.FirstOrDefault(s => s.Id == id);
            if (server is null)
                cmdlet.WriteError(new ErrorRecord(new ItemNotFoundException($"No CkLlm server with Id {id} is running."), "ServerNotFound", ErrorCategory.ObjectNotFound, id));
            else if (!selected.Contains(server)) selected.Add(server);
        }
        return selected;
    }
}
