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

    protected KnowledgeBase OpenKnowledgeBase(KnowledgeBaseOptions? options = null) => OpenKnowledgeBase(KnowledgeBase, options);
}
