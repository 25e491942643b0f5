using System.Management.Automation;
using CkLlm.Engine.Session;

namespace CkLlm.Commands;

/// <summary>Shows the process-wide CkLlm session: loaded models, the current model and knowledge base.</summary>
[Cmdlet(VerbsCommon.Get, "CkSession")]
[OutputType(typeof(CkSession))]
public sealed class GetCkSessionCommand : CkCmdlet
{
    protected override void EndProcessing() => WriteObject(SessionHost.Session);
}
