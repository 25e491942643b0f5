using CkLlm.Engine.Inference;
using CkLlm.Engine.Session;

namespace CkLlm.Server.Serving;

/// <summary>What every endpoint of one running server shares: the session (its loaded models), the served knowledge
/// bases, the admission queue, the generation path and the request counters. Registered as a singleton service, so
/// endpoints added later (MCP) can take it from the request's services.</summary>
public sealed class ServingContext : IDisposable
{
    private long _requests;
    private long _failed;

    internal ServingContext(CkSession session, CkServerOptions options, IReadOnlyList<ServedKnowledgeBase> knowledgeBases)
    {
        Session = session;
        Options = options;
        KnowledgeBases = knowledgeBases;
        Admission = new AdmissionQueue(options.MaxConcurrentRequests, options.MaxQueuedRequests);
        Generation = new GenerationService(options.MaxConcurrentRequests);
    }

    public CkSession Session { get; }
    public DateTimeOffset Started { get; } = DateTimeOffset.Now;
    public CkServerOptions Options { get; }
    internal IReadOnlyList<ServedKnowledgeBase> KnowledgeBases { get; }
    internal AdmissionQueue Admission { get; }
    internal GenerationService Generation { get; }

    /// <summary>Directories of the served knowledge bases.</summary>
    public IReadOnlyList<string> KnowledgeBaseDirectories => KnowledgeBases.Select(k => k.Directory).ToArray();

    public long Requests => Interlocked.Read(ref _requests);
    public long FailedRequests => Interlocked.Read(ref _failed);
    internal void CountRequest() => Interlocked.Increment(ref _requests);
    internal void CountFailure() => Interlocked.Increment(ref _failed);

    /// <summary>The served model ids: every loaded model by name, then rag/&lt;name&gt; per knowledge base.</summary>
    internal IReadOnlyList<string> ModelIds =>
        Session.Models.Select(m => m.Name).Concat(KnowledgeBases.Select(k => k.ModelId)).ToArray();

    /// <summary>The chat model or served knowledge base an id names; 404 when neither.</summary>
    internal (IChatModel Model, ServedKnowledgeBase? Knowledge) ResolveModel(string id)
    {
        if (id.StartsWith(ServedKnowledgeBase.ModelPrefix, StringComparison.OrdinalIgnoreCase))
        {
            var knowledge = FindKnowledgeBase(id) ?? throw ApiError.ModelNotFound(id);
            // A rag/ model answers with the session's current model (Import-CkModel's or Set by name).
            var answering = Session.CurrentModel ?? throw new ApiError(503, $"'{id}' needs a loaded chat model to answer; none is loaded.", "model", "no_model_loaded");
            return (answering, knowledge);
        }
        return Session.TryGetModel(id, out var model) && model is not null ? (model, null) : throw ApiError.ModelNotFound(id);
    }

    /// <summary>A served knowledge base by "name" or "rag/name" (any case).</summary>
    internal ServedKnowledgeBase? FindKnowledgeBase(string id)
    {
        var name = id.StartsWith(ServedKnowledgeBase.ModelPrefix, StringComparison.OrdinalIgnoreCase) ? id[ServedKnowledgeBase.ModelPrefix.Length..] : id;
        return KnowledgeBases.FirstOrDefault(k => string.Equals(k.Name, name, StringComparison.OrdinalIgnoreCase));
    }

    public void Dispose()
    {
        foreach (var knowledge in KnowledgeBases) knowledge.Dispose();
        Admission.Dispose();
        Generation.Dispose();
    }
}
