using System.Collections;
using System.Management.Automation;
using CkLlm.Engine.Knowledge;

namespace CkLlm.Commands;

/// <summary>What the knowledge cmdlets share: -KnowledgeBase resolution, cancellation, and engine errors as ErrorRecords.</summary>
public abstract class KnowledgeCommandBase : PSCmdlet, IDisposable
{
    private readonly CancellationTokenSource _cancellation = new();

    /// <summary>Knowledge base directory; defaults to the session's current one (or ~/.ckllm/knowledge).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? KnowledgeBase { get; set; }

    protected CancellationToken Cancellation => _cancellation.Token;

    protected override void StopProcessing() => _cancellation.Cancel();

    protected KnowledgeBase OpenKnowledgeBase(KnowledgeBaseOptions? options = null)
    {
        var directory = KnowledgeBase is null ? null : SessionState.Path.GetUnresolvedProviderPathFromPSPath(KnowledgeBase);
        try
        {
            return SessionHost.Session.OpenKnowledgeBase(directory, options);
        }
        catch (Exception ex) when (ex is KnowledgeBaseException or IOException or UnauthorizedAccessException or FileNotFoundException)
        {
            ThrowTerminatingError(ToErrorRecord(ex, directory ?? SessionHost.Session.CurrentKnowledgeBase));
            throw; // unreachable
        }
    }

    /// <summary>Maps engine exceptions to a category the user can act on.</summary>
    protected static ErrorRecord ToErrorRecord(Exception ex, object? target)
    {
        var (id, category) = ex switch
        {
            KnowledgeBaseBusyException => ("KnowledgeBaseBusy", ErrorCategory.ResourceBusy),
            KnowledgeBaseCorruptException => ("KnowledgeBaseCorrupt", ErrorCategory.InvalidData),
            EmbedderMismatchException => ("EmbedderMismatch", ErrorCategory.InvalidArgument),
            Engine.Knowledge.Embedding.UnknownEmbedderException => ("UnknownEmbedder", ErrorCategory.InvalidArgument),
            UnreadableDocumentException => ("UnreadableDocument", ErrorCategory.ReadError),
            FileNotFoundException => ("FileNotFound", ErrorCategory.ObjectNotFound),
            UnauthorizedAccessException => ("AccessDenied", ErrorCategory.PermissionDenied),
            ArgumentException => ("InvalidArgument", ErrorCategory.InvalidArgument),
            KnowledgeBaseException => ("KnowledgeBaseError", ErrorCategory.InvalidOperation),
            _ => ("KnowledgeBaseError", ErrorCategory.NotSpecified),
        };
        return new ErrorRecord(ex, id, category, target);
    }

    /// <summary>@{ key = value } as the engine's string dictionary.</summary>
    protected static Dictionary<string, string>? ToDictionary(Hashtable? table)
    {
        if (table is null) return null;
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (DictionaryEntry e in table)
            result[e.Key.ToString()!] = e.Value is null ? "" : LanguagePrimitives.ConvertTo<string>(e.Value);
        return result;
    }

    public void Dispose()
    {
        _cancellation.Dispose();
        GC.SuppressFinalize(this);
    }
}
