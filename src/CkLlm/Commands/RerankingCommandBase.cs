using System.Management.Automation;
using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Knowledge.Search;

namespace CkLlm.Commands;

/// <summary>The knowledge cmdlets that search (Search-CkKnowledge, Invoke-CkRag, Measure-CkRetrieval): -Rerank.</summary>
public abstract class RerankingCommandBase : KnowledgeCommandBase
{
    /// <summary>A GGUF reranker file (cross-encoder with rank pooling), or the name of a loaded chat model
    /// (Import-CkModel) to judge each candidate's relevance. Searches deeper, reorders, keeps -Top.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Rerank { get; set; }

    /// <summary>The reranker -Rerank names, or null; a bad value is a terminating error (NotAReranker, FileNotFound).</summary>
    protected IReranker? ResolveReranker()
    {
        if (Rerank is null) return null;
        try
        {
            var path = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Rerank);
            return RerankerRegistry.Resolve(Rerank, name => SessionHost.Session.TryGetModel(name, out var model) ? model : null, path);
        }
        catch (Exception ex) when (ex is KnowledgeBaseException or IOException or ArgumentException)
        {
            var record = ex is NotARerankerException
                ? new ErrorRecord(ex, "NotAReranker", ErrorCategory.InvalidArgument, Rerank)
                : ToErrorRecord(ex, Rerank);
            ThrowTerminatingError(record);
            throw; // unreachable
        }
    }
}
