using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Knowledge.Embedding;

namespace CkLlm.Engine.Session;

/// <summary>Knowledge-base state: opened knowledge bases by directory and the current one.</summary>
public sealed partial class CkSession
{
    private readonly object _knowledgeGate = new();
    private readonly Dictionary<string, KnowledgeBase> _knowledgeBases = new(StringComparer.Ordinal);
    private string? _currentKnowledgeBase;

    /// <summary>Directory of the knowledge base cmdlets use when -KnowledgeBase is not given.</summary>
    public string? CurrentKnowledgeBase
    {
        get { lock (_knowledgeGate) return _currentKnowledgeBase; }
    }

    /// <summary>Default directory when none was ever named: $CKLLM_KNOWLEDGE_BASE or ~/.ckllm/knowledge.</summary>
    public static string DefaultKnowledgeBaseDirectory =>
        Environment.GetEnvironmentVariable("CKLLM_KNOWLEDGE_BASE") is { Length: > 0 } env
            ? env
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".ckllm", "knowledge");

    /// <summary>
    /// Returns the open knowledge base for <paramref name="directory"/> (or the current/default one), opening or
    /// creating it on first use, and makes it current. An explicit embedding model different from the one the
    /// cached instance uses reopens it, which then fails with <see cref="EmbedderMismatchException"/> if it differs
    /// from what the knowledge base was built with.
    /// </summary>
    public KnowledgeBase OpenKnowledgeBase(string? directory, KnowledgeBaseOptions? options = null)
    {
        var path = Path.GetFullPath(directory ?? CurrentKnowledgeBase ?? DefaultKnowledgeBaseDirectory);
        lock (_knowledgeGate)
        {
            if (_knowledgeBases.TryGetValue(path, out var kb) && options?.EmbeddingModel is null && options?.Embedder is null && !ChunkingDiffers(options))
            {
                _currentKnowledgeBase = path;
                return kb;
            }
            var opened = KnowledgeBase.Open(path, options);
            if (_knowledgeBases.Remove(path, out var old)) old.Dispose();
            _knowledgeBases[path] = opened;
            _currentKnowledgeBase = path;
            return opened;
        }
    }

    private static bool ChunkingDiffers(KnowledgeBaseOptions? options) =>
        options is not null && (options.ChunkSize != new KnowledgeBaseOptions().ChunkSize || options.ChunkOverlap != new KnowledgeBaseOptions().ChunkOverlap);

    /// <summary>Knowledge bases open in this process.</summary>
    public IReadOnlyList<string> OpenKnowledgeBases
    {
        get { lock (_knowledgeGate) return _knowledgeBases.Keys.ToList(); }
    }

    /// <summary>Closes (and flushes) one open knowledge base.</summary>
    public bool CloseKnowledgeBase(string directory)
    {
        var path = Path.GetFullPath(directory);
        lock (_knowledgeGate)
        {
            if (!_knowledgeBases.Remove(path, out var kb)) return false;
            kb.Dispose();
            if (_currentKnowledgeBase == path) _currentKnowledgeBase = null;
            return true;
        }
    }

    private void DisposeKnowledge()
    {
        lock (_knowledgeGate)
        {
            foreach (var kb in _knowledgeBases.Values) kb.Dispose();
            _knowledgeBases.Clear();
            _currentKnowledgeBase = null;
        }
    }
}
