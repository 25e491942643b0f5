using System.Management.Automation;
using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Knowledge.Ingestion;
using CkLlm.Engine.Model.Gguf;
using CkLlm.Engine.Rag;
using CkLlm.Engine.Remote;
using CkLlm.Engine.Session;

namespace CkLlm;

/// <summary>How one kind of engine exception becomes an ErrorRecord.</summary>
/// <param name="ErrorId">The FullyQualifiedErrorId's first part, the same in every cmdlet.</param>
/// <param name="Terminating">True when the failure is about the command's shared resource (the knowledge base is
/// busy, corrupt or built with another embedder), so no further input can succeed; false when it is about one input
/// item (a file, a question, a model name), so the pipeline goes on with the next.</param>
internal sealed record EngineErrorKind(string ErrorId, ErrorCategory Category, bool Terminating);

/// <summary>The one table from engine exceptions to ErrorRecords; every cmdlet reports engine failures through it.</summary>
internal static class EngineErrors
{
    /// <summary>Most specific type first: the first entry the exception is an instance of wins.</summary>
    private static readonly (Type Type, EngineErrorKind Kind)[] Table =
    [
        (typeof(KnowledgeBaseNotFoundException), new("KnowledgeBaseNotFound", ErrorCategory.ObjectNotFound, true)),
        (typeof(MassRemovalException), new("PruneLimitExceeded", ErrorCategory.LimitsExceeded, false)),
        (typeof(DocumentTooLargeException), new("FileTooLarge", ErrorCategory.LimitsExceeded, false)),
        (typeof(KnowledgeBaseBusyException), new("KnowledgeBaseBusy", ErrorCategory.ResourceBusy, true)),
        (typeof(KnowledgeBaseCorruptException), new("KnowledgeBaseCorrupt", ErrorCategory.InvalidData, true)),
        (typeof(EmbedderMismatchException), new("EmbedderMismatch", ErrorCategory.InvalidArgument, true)),
        (typeof(UnreadableDocumentException), new("UnreadableDocument", ErrorCategory.ReadError, false)),
        (typeof(Engine.Knowledge.Embedding.UnknownEmbedderException), new("UnknownEmbedder", ErrorCategory.InvalidArgument, true)),
        (typeof(Engine.Knowledge.Search.NotARerankerException), new("NotAReranker", ErrorCategory.InvalidArgument, true)),
        (typeof(KnowledgeServerUnreachableException), new("KnowledgeServerUnreachable", ErrorCategory.ConnectionError, true)),
        (typeof(KnowledgeServerAuthenticationException), new("KnowledgeServerAuthentication", ErrorCategory.AuthenticationError, true)),
        (typeof(KnowledgeBaseException), new("KnowledgeBaseError", ErrorCategory.InvalidOperation, true)),
        (typeof(Engine.Chat.ChatModelRemovedException), new("ChatModelRemoved", ErrorCategory.ResourceUnavailable, false)),
        (typeof(Engine.Chat.ChatRemovedException), new("ChatRemoved", ErrorCategory.InvalidOperation, false)),
        (typeof(ChatNotFoundException), new("ChatNotFound", ErrorCategory.ObjectNotFound, false)),
        (typeof(ChatExistsException), new("ChatExists", ErrorCategory.ResourceExists, false)),
        (typeof(Engine.Chat.ChatBudgetException), new("PromptDoesNotFit", ErrorCategory.LimitsExceeded, false)),
        (typeof(ModelNotLoadedException), new("NoModelLoaded", ErrorCategory.InvalidOperation, false)),
        (typeof(GgufFormatException), new("InvalidModelFile", ErrorCategory.InvalidData, false)),
        (typeof(RagBudgetException), new("PromptDoesNotFit", ErrorCategory.LimitsExceeded, false)),
        // Remote models: about one request, so the pipeline goes on (the next question may succeed after a rate limit).
        (typeof(RemoteConnectionException), new("RemoteConnectionFailed", ErrorCategory.ConnectionError, false)),
        (typeof(RemoteAuthenticationException), new("RemoteAuthenticationFailed", ErrorCategory.AuthenticationError, false)),
        (typeof(RemotePermissionException), new("RemotePermissionDenied", ErrorCategory.PermissionDenied, false)),
        (typeof(RemoteModelNotFoundException), new("RemoteModelNotFound", ErrorCategory.ObjectNotFound, false)),
        (typeof(RemoteRateLimitException), new("RemoteRateLimited", ErrorCategory.LimitsExceeded, false)),
        (typeof(RemoteTimeoutException), new("RemoteTimeout", ErrorCategory.OperationTimeout, false)),
        (typeof(RemoteStreamInterruptedException), new("RemoteStreamInterrupted", ErrorCategory.ConnectionError, false)),
        (typeof(RemoteParameterNotSupportedException), new("RemoteParameterNotSupported", ErrorCategory.InvalidArgument, false)),
        (typeof(RemoteModelException), new("RemoteModelFailed", ErrorCategory.InvalidResult, false)),
        (typeof(ObjectDisposedException), new("ModelRemoved", ErrorCategory.InvalidOperation, false)),
        (typeof(FileNotFoundException), new("FileNotFound", ErrorCategory.ObjectNotFound, false)),
        (typeof(DirectoryNotFoundException), new("DirectoryNotFound", ErrorCategory.ObjectNotFound, false)),
        (typeof(UnauthorizedAccessException), new("AccessDenied", ErrorCategory.PermissionDenied, false)),
        (typeof(InvalidDataException), new("InvalidData", ErrorCategory.InvalidData, false)),
        (typeof(IOException), new("IOError", ErrorCategory.ReadError, false)),
        (typeof(ArgumentException), new("InvalidArgument", ErrorCategory.InvalidArgument, false)),
        (typeof(NotSupportedException), new("NotSupported", ErrorCategory.NotImplemented, false)),
        (typeof(InvalidOperationException), new("OperationFailed", ErrorCategory.InvalidOperation, false)),
    ];

    /// <summary>The table's entry for <paramref name="error"/>, or null when it is not an engine failure (a bug: let it surface).</summary>
    public static EngineErrorKind? Find(Exception error)
    {
        foreach (var (type, kind) in Table)
            if (type.IsInstanceOfType(error)) return kind;
        return null;
    }

    public static bool IsEngineError(Exception error) => Find(error) is not null;

    /// <summary>The ErrorRecord for <paramref name="error"/> about <paramref name="target"/>.</summary>
    public static ErrorRecord ToErrorRecord(Exception error, object? target) =>
        ToErrorRecord(error, target, Find(error) ?? new EngineErrorKind("EngineError", ErrorCategory.NotSpecified, true));

    public static ErrorRecord ToErrorRecord(Exception error, object? target, EngineErrorKind kind) =>
        new(error, kind.ErrorId, kind.Category, target);
}
