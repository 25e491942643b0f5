using System.Management.Automation;
using CkLlm.Engine.Knowledge;

namespace CkLlm.Commands;

/// <summary>The knowledge cmdlets: -KnowledgeBase and its resolution.</summary>
public abstract class KnowledgeCommandBase : CkCmdlet
{
    /// <summary>Knowledge base directory or <c>postgresql://user@host:port/database?name=kb</c> URI; defaults to the
    /// session's current one (or ~/.ckllm/knowledge).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? KnowledgeBase { get; set; }

    /// <summary>User name and password for a knowledge base on a PostgreSQL server whose URI carries no password.</summary>
    [Parameter]
    [Credential]
    public PSCredential? Credential { get; set; }

    /// <summary>Only Add-CkKnowledge creates a knowledge base; every other cmdlet needs an existing one, so a mistyped
    /// -KnowledgeBase is an ObjectNotFound error instead of a new empty directory.</summary>
    protected virtual bool CreatesKnowledgeBase => false;

    /// <summary>
    /// Removes the sources whose files are gone (Sync-CkKnowledge, Add-CkKnowledge -Prune), each confirmed with
    /// ShouldProcess; more than half of the knowledge base only with <paramref name="force"/> (a moved folder or another
    /// machine's paths look like mass deletion). A source re-added meanwhile by another writer is kept.
    /// </summary>
    protected void PruneMissingSources(KnowledgeBase kb, bool force)
    {
        var missing = kb.GetMissingSources();
        if (PruneGuard.Check(missing, kb.GetSources().Count, force) is { } refused)
        {
            WriteEngineError(refused, kb.Directory);
            return;
        }
        var confirmed = missing.Where(s => ShouldProcess($"{s.Source} (file no longer exists)", "Remove knowledge source")).ToList();
        if (confirmed.Count > 0) WriteObject(kb.RemoveMissing(confirmed, Cancellation), enumerateCollection: true);
    }

    /// <summary>The -KnowledgeBase a new chat is grounded in (null when not given), opened now so that a typo is an error at
    /// once rather than at the first turn; a server URI is kept without its password.</summary>
    protected string? GroundingKnowledgeBase() => KnowledgeBase is null ? null : OpenKnowledgeBase().Directory;

    /// <summary>Opens -KnowledgeBase, or <paramref name="defaultKnowledgeBase"/> when it is not given (null: the session's
    /// current one).</summary>
    protected KnowledgeBase OpenKnowledgeBase(KnowledgeBaseOptions? options = null, string? defaultKnowledgeBase = null)
    {
        if (Credential is not null)
        {
            options ??= new KnowledgeBaseOptions();
            options.Credential = Credential.GetNetworkCredential();
        }
        return OpenKnowledgeBase(KnowledgeBase ?? defaultKnowledgeBase, options, mustExist: !CreatesKnowledgeBase);
    }
}
