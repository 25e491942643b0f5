using System.Management.Automation;
using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Knowledge.Ingestion;

namespace CkLlm.Commands;

/// <summary>Brings file sources up to date: re-reads changed files and removes sources whose files are gone.</summary>
[Cmdlet(VerbsData.Sync, "CkKnowledge", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(IngestResult))]
public sealed class SyncCkKnowledgeCommand : KnowledgeCommandBase
{
    /// <summary>Only remove missing sources; do not re-read changed files.</summary>
    [Parameter]
    public SwitchParameter PruneOnly { get; set; }

    /// <summary>Remove missing sources even when they are more than half of the knowledge base.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void EndProcessing()
    {
        var kb = OpenKnowledgeBase();
        try
        {
            PruneMissingSources(kb, Force);
            if (!PruneOnly)
            {
                var files = kb.GetSources().Where(s => s.Kind == SourceKind.File && File.Exists(s.Source)).ToList();
                int done = 0;
                foreach (var source in files)
                {
                    Cancellation.ThrowIfCancellationRequested();
                    WriteProgress(new ProgressRecord(1, "Sync-CkKnowledge", $"{done++}/{files.Count} files checked")
                    { CurrentOperation = source.Source, PercentComplete = files.Count == 0 ? 100 : done * 100 / files.Count });
                    if (!kb.HasChanged(source)) continue;
                    if (!ShouldProcess(source.Source, "Update changed knowledge source")) continue;
                    TryEngine(() =>
                    {
                        try
                        {
                            var updated = kb.AddFile(source.Source, source.Metadata, cancellationToken: Cancellation);
                            if (updated.Warning is { } warning) WriteWarning(warning);
                            WriteObject(updated);
                        }
                        catch (DocumentTooLargeException ex) { WriteWarning(ex.Message); }
                    }, source.Source);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Ctrl+C: everything committed so far stays.
        }
        catch (Exception ex) when (EngineErrors.IsEngineError(ex))
        {
            WriteEngineError(ex, kb.Directory);
        }
        finally
        {
            FlushQuietly(kb);
        }
    }

    private void FlushQuietly(KnowledgeBase kb)
    {
        try { kb.Flush(); }
        catch (Exception ex) when (ex is IOException or KnowledgeBaseException) { WriteWarning("Saving the vector index failed: " + ex.Message); }
    }
}
