using System.Reflection;
using CkLlm.Engine.Knowledge;

namespace CkLlm.Engine.Session;

/// <summary>
/// Knowledge-base state: opened knowledge bases by directory and the current one. A knowledge base is closed (reopened
/// with other options, closed, or the session disposed) only when no lease on it is held, so a search running in one
/// runspace is never pulled from under it by another.
/// </summary>
public sealed partial class CkSession
{
    private readonly object _knowledgeGate = new();
    private readonly Dictionary<string, OpenedKnowledgeBase> _knowledgeBases = new(StringComparer.Ordinal);
    private readonly Dictionary<KnowledgeBase, int> _knowledgeUses = new(ReferenceEqualityComparer.Instance);
    private readonly HashSet<KnowledgeBase> _retiredKnowledgeBases = new(ReferenceEqualityComparer.Instance);
    private string? _currentKnowledgeBase;

    /// <summary>An open knowledge base and the options it was opened with (what later requests are compared to).</summary>
    /// <param name="Location">As the user gave it (a server URI may carry a password that the session key leaves out).</param>
    private sealed record OpenedKnowledgeBase(KnowledgeBase KnowledgeBase, KnowledgeBaseOptions Options, string Location);

    /// <summary>Directory (or server URI without password) of the knowledge base cmdlets use when -KnowledgeBase is not given.</summary>
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
    /// creating it on first use, and makes it current. Null <paramref name="options"/> take the cached instance as it
    /// is; options that differ from the ones the cached instance was opened with reopen it (an explicit embedding model
    /// always does, which then fails with <see cref="EmbedderMismatchException"/> if it differs from the recorded one).
    /// </summary>
    /// <remarks>Without a lease the instance may be closed by another thread at any time; use <see cref="LeaseKnowledgeBase"/>.
    /// With <paramref name="mustExist"/> (every read-only caller) a path holding no knowledge base gives
    /// <see cref="KnowledgeBaseNotFoundException"/> and nothing is created.</remarks>
    public KnowledgeBase OpenKnowledgeBase(string? directory, KnowledgeBaseOptions? options = null, bool mustExist = false)
    {
        lock (_knowledgeGate) return OpenLocked(directory, options, mustExist);
    }

    /// <summary>
    /// Like <see cref="OpenKnowledgeBase"/>, and holds the returned instance open until the lease is disposed: closing
    /// or reopening it meanwhile only retires it, and the last lease to end disposes it.
    /// </summary>
    public KnowledgeBaseLease LeaseKnowledgeBase(string? directory, KnowledgeBaseOptions? options = null, bool mustExist = false)
    {
        lock (_knowledgeGate)
        {
            var kb = OpenLocked(directory, options, mustExist);
            _knowledgeUses[kb] = _knowledgeUses.GetValueOrDefault(kb) + 1;
            return new KnowledgeBaseLease(kb, ReleaseKnowledgeBase);
        }
    }

    private KnowledgeBase OpenLocked(string? directory, KnowledgeBaseOptions? options, bool mustExist)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var location = directory ?? _currentKnowledgeBase ?? DefaultKnowledgeBaseDirectory;
        // A directory or a server URI (postgresql://...): keyed without password, so both spellings share one instance.
        var path = KnowledgeLocation.Normalize(location);
        // A folder deleted while its instance is cached is gone for readers (a server is asked when opening).
        if (mustExist && !KnowledgeLocation.IsServer(path) && !KnowledgeBaseNotFoundException.Exists(path)) throw new KnowledgeBaseNotFoundException(path);
        if (_knowledgeBases.TryGetValue(path, out var cached) && (options is null || SameOptions(cached.Options, options)))
        {
            _currentKnowledgeBase = path;
            return cached.KnowledgeBase;
        }
        if (directory is null && cached is not null) location = cached.Location;
        var opened = KnowledgeBase.Open(KnowledgeLocation.IsServer(location) ? location : path, options, mustExist);
        if (_knowledgeBases.Remove(path, out var old)) RetireLocked(old.KnowledgeBase);
        _knowledgeBases[path] = new OpenedKnowledgeBase(opened, options ?? new KnowledgeBaseOptions(), location);
        _currentKnowledgeBase = path;
        return opened;
    }

    /// <summary>Whether a request may use an instance opened with <paramref name="cached"/>: every option equal, and no
    /// explicit embedding model or embedder name (that must be checked against the recorded one by opening). The
    /// credential is not compared.</summary>
    private static bool SameOptions(KnowledgeBaseOptions cached, KnowledgeBaseOptions requested) =>
        requested.EmbeddingModel is null && requested.Embedder is null &&
        typeof(KnowledgeBaseOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanRead && p.Name is not (nameof(KnowledgeBaseOptions.EmbeddingModel)) and not (nameof(KnowledgeBaseOptions.Embedder))
                // An open instance is already signed in: a credential given again does not reopen it.
                and not (nameof(KnowledgeBaseOptions.Credential)))
            .All(p => Equals(p.GetValue(cached), p.GetValue(requested)));

    /// <summary>Knowledge bases open in this process.</summary>
    public IReadOnlyList<string> OpenKnowledgeBases
    {
        get { lock (_knowledgeGate) return _knowledgeBases.Keys.ToList(); }
    }

    /// <summary>Closes (and flushes) one open knowledge base, at once or when its last lease ends.</summary>
    public bool CloseKnowledgeBase(string directory)
    {
        var path = KnowledgeLocation.Normalize(directory);
        lock (_knowledgeGate)
        {
            if (!_knowledgeBases.Remove(path, out var opened)) return false;
            RetireLocked(opened.KnowledgeBase);
            if (_currentKnowledgeBase == path) _currentKnowledgeBase = null;
            return true;
        }
    }

    private void RetireLocked(KnowledgeBase kb)
    {
        if (_knowledgeUses.ContainsKey(kb)) _retiredKnowledgeBases.Add(kb);
        else kb.Dispose();
    }

    private void ReleaseKnowledgeBase(KnowledgeBase kb)
    {
        lock (_knowledgeGate)
        {
            var uses = _knowledgeUses.GetValueOrDefault(kb) - 1;
            if (uses > 0)
            {
                _knowledgeUses[kb] = uses;
                return;
            }
            _knowledgeUses.Remove(kb);
            if (_retiredKnowledgeBases.Remove(kb)) kb.Dispose();
        }
    }

    private void DisposeKnowledge()
    {
        lock (_knowledgeGate)
        {
            foreach (var opened in _knowledgeBases.Values) RetireLocked(opened.KnowledgeBase);
            _knowledgeBases.Clear();
            _currentKnowledgeBase = null;
        }
    }
}

/// <summary>A knowledge base held open for one command; Dispose releases it (see <see cref="CkSession.LeaseKnowledgeBase"/>).</summary>
public sealed class KnowledgeBaseLease : IDisposable
{
    private readonly Action<KnowledgeBase> _release;
    private int _released;

    internal KnowledgeBaseLease(KnowledgeBase knowledgeBase, Action<KnowledgeBase> release)
    {
        KnowledgeBase = knowledgeBase;
        _release = release;
    }

    public KnowledgeBase KnowledgeBase { get; }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0) _release(KnowledgeBase);
    }
}
