using System.Management.Automation;
using CkLlm.Engine.Knowledge;

namespace CkLlm.Commands;

/// <summary>The knowledge cmdlets: -KnowledgeBase and its resolution.</summary>
public abstract class KnowledgeCommandBase : CkCmdlet
{
    /// <summary>Knowledge base directory; defaults to the session's current one (or ~/.ckllm/knowledge).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? KnowledgeBase { get; set; }

    /// <summary>Only Add-CkKnowledge creates a knowledge base; every other cmdlet needs an existing one, so a mistyped
    /// -KnowledgeBase is an ObjectNotFound error instead of a new empty directory.</summary>
    protected virtual bool CreatesKnowledgeBase => false;

    protected KnowledgeBase OpenKnowledgeBase(KnowledgeBaseOptions? options = null) =>
        OpenKnowledgeBase(KnowledgeBase, options, mustExist: !CreatesKnowledgeBase);
}
