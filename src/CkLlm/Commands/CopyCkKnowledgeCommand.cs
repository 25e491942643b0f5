using System.Management.Automation;
using CkLlm.Engine.Knowledge;

namespace CkLlm.Commands;

/// <summary>Copies a knowledge base between a folder and a PostgreSQL server (either way, or folder to folder) with
/// the vectors as they are: nothing is embedded again.</summary>
[Cmdlet(VerbsCommon.Copy, "CkKnowledge", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(IngestResult))]
public sealed class CopyCkKnowledgeCommand : CkCmdlet
{
    /// <summary>The knowledge base to copy: a directory or a postgresql:// URI. It must exist.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string From { get; set; } = "";

    /// <summary>Where to copy to: a directory or a postgresql:// URI, created when missing.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string To { get; set; } = "";

    /// <summary>Only these sources (wildcards); default all.</summary>
    [Parameter]
    [SupportsWildcards]
    public string[]? Source { get; set; }

    /// <summary>User name and password for a server whose URI carries no password (used for both ends).</summary>
    [Parameter]
    [Credential]
    public PSCredential? Credential { get; set; }

    /// <summary>Copy sources the target already holds with the same content too.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void EndProcessing()
    {
        var credential = Credential?.GetNetworkCredential();
        var from = OpenKnowledgeBase(From, credential is null ? null : new KnowledgeBaseOptions { Credential = credential }, mustExist: true);
        var sources = Source is null ? from.GetSources() : MatchNames(Source, from.GetSources(), s => s.Source, "SourceNotFound", "No source matches '{0}' in the knowledge base.");
        var target = KnowledgeLocation.WithoutPassword(To);
        var confirmed = sources.Where(s => ShouldProcess($"{s.Source} ({s.Chunks} chunks)", $"Copy to knowledge base {target}")).ToList();
        if (confirmed.Count == 0) return;
        // The target is built with the source's embedder: a new one records it, an existing one must already have it.
        var to = OpenKnowledgeBase(To, new KnowledgeBaseOptions { Embedder = from.EmbedderLocator, Credential = credential });
        int done = 0;
        foreach (var source in confirmed)
        {
            Cancellation.ThrowIfCancellationRequested();
            WriteProgress(new ProgressRecord(1, "Copy-CkKnowledge", $"{done}/{confirmed.Count} sources copied")
                { CurrentOperation = source.Source, PercentComplete = done * 100 / confirmed.Count });
            if (!TryEngine(() => WriteObject(from.CopySourceTo(source, to, Force, Cancellation)), source.Source) && Cancellation.IsCancellationRequested) break;
            done++;
        }
        WriteProgress(new ProgressRecord(1, "Copy-CkKnowledge", "done") { RecordType = ProgressRecordType.Completed });
        try { to.Flush(); }
        catch (Exception ex) when (ex is IOException or KnowledgeBaseException) { WriteWarning("Saving the vector index failed (it will be rebuilt): " + ex.Message); }
    }
}
