using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Knowledge.Embedding;
using CkLlm.Engine.Session;

namespace CkLlm.Server.Serving;

/// <summary>A knowledge base the server holds open (a session lease, so another runspace cannot close it mid-request)
/// and serves as the model id <c>rag/&lt;Name&gt;</c>.</summary>
internal sealed class ServedKnowledgeBase : IDisposable
{
    public const string ModelPrefix = "rag/";

    private readonly KnowledgeBaseLease _lease;

    public ServedKnowledgeBase(string name, KnowledgeBaseLease lease)
    {
        Name = name;
        _lease = lease;
    }

    public string Name { get; }
    public string ModelId => ModelPrefix + Name;
    public KnowledgeBase KnowledgeBase => _lease.KnowledgeBase;
    public string Directory => KnowledgeBase.Directory;

    /// <summary>Embeds texts as the knowledge base embeds its passages: a registered embedder (MiniLM, ArcticXs) is
    /// resolved by its recorded id; any other (a GGUF embedding model) through the knowledge base's own query path.</summary>
    public (float[][] Vectors, int Tokens) Embed(IReadOnlyList<string> texts, CancellationToken cancellationToken)
    {
        if (EmbedderRegistry.IsRegistered(KnowledgeBase.Embedder))
        {
            var embedder = EmbedderRegistry.Resolve(KnowledgeBase.Embedder);
            return (embedder.Embed(texts, cancellationToken), texts.Sum(embedder.CountTokens));
        }
        var vectors = new float[texts.Count][];
        for (var i = 0; i < texts.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            vectors[i] = KnowledgeBase.EmbedQuery(texts[i]);
        }
        return (vectors, 0);
    }

    public void Dispose() => _lease.Dispose();

    /// <summary>Leases each directory and names it after its folder; two folders of one name are refused.</summary>
    public static IReadOnlyList<ServedKnowledgeBase> OpenAll(CkSession session, IReadOnlyList<string> directories)
    {
        var served = new List<ServedKnowledgeBase>();
        try
        {
            foreach (var directory in directories)
            {
                var full = KnowledgeLocation.Normalize(directory);
                var name = KnowledgeLocation.ShortName(full);
                if (served.Any(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase)))
                    throw new ArgumentException($"Two knowledge bases would both be served as '{ModelPrefix}{name}'; serve folders with different names.");
                served.Add(new ServedKnowledgeBase(name, session.LeaseKnowledgeBase(full, mustExist: true)));
            }
            return served;
        }
        catch
        {
            foreach (var s in served) s.Dispose();
            throw;
        }
    }
}
