namespace CkLlm.Engine.Knowledge.Embedding;

/// <summary>
/// Embedders by name, and a process-wide cache of loaded ones (loading an ONNX or GGUF model is expensive and the
/// instances are thread-safe). A name is a registered embedder ("MiniLM", "ArcticXs", or one added with
/// <see cref="Register"/>) or the path of a GGUF embedding model. Nothing here tests types: each embedder says what it
/// is (<see cref="IEmbedder.Id"/>) and how to load it again (<see cref="IEmbedder.Locator"/>).
/// </summary>
public static class EmbedderRegistry
{
    /// <summary>The embedder a new knowledge base gets when none is named: the one that won on the dev halves of the
    /// blind evaluation sets (docs/benchmarks.md).</summary>
    public const string DefaultName = MiniLmEmbedder.Name;

    private static readonly object Gate = new();
    private static readonly Dictionary<string, Func<IEmbedder>> Factories = new(StringComparer.OrdinalIgnoreCase)
    {
        [MiniLmEmbedder.Name] = () => new MiniLmEmbedder(),
        [MiniLmEmbedder.ModelId] = () => new MiniLmEmbedder(),
        [ArcticXsEmbedder.Name] = () => new ArcticXsEmbedder(),
        [ArcticXsEmbedder.ModelId] = () => new ArcticXsEmbedder(),
    };
    private static readonly Dictionary<string, IEmbedder> Loaded = new(StringComparer.Ordinal);

    /// <summary>Embedders named by a locator with a scheme ("remote:..."): made on every resolve and not cached, as they
    /// are cheap to make and a new one checks the endpoint (the knowledge base is what stays open).</summary>
    private static readonly (string Prefix, Func<string, IEmbedder> Factory)[] Schemes =
    [
        (RemoteEmbedder.Scheme, RemoteEmbedder.FromLocator),
    ];

    /// <summary>Names of the registered embedders (GGUF files are named by path and not listed).</summary>
    public static IReadOnlyList<string> Names
    {
        get { lock (Gate) return Factories.Keys.Where(k => !k.Contains('-', StringComparison.Ordinal)).Order(StringComparer.OrdinalIgnoreCase).ToList(); }
    }

    /// <summary>Adds (or replaces) a named embedder, e.g. a test double or a remote embedding service.</summary>
    public static void Register(string name, Func<IEmbedder> factory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(factory);
        lock (Gate)
        {
            Factories[name] = factory;
            Loaded.Remove(CacheKey(name));
        }
    }

    /// <summary>True when <paramref name="name"/> is a registered name (not a path).</summary>
    public static bool IsRegistered(string name)
    {
        lock (Gate) return Factories.ContainsKey(name);
    }

    /// <summary>The embedder for a name, GGUF path or remote locator (null or empty: <see cref="DefaultName"/>), loaded once per process.
    /// An unknown name gives <see cref="UnknownEmbedderException"/>; a missing GGUF file <see cref="FileNotFoundException"/>.</summary>
    public static IEmbedder Resolve(string? name)
    {
        if (string.IsNullOrWhiteSpace(name)) name = DefaultName;
        foreach (var (prefix, factory) in Schemes)
            if (name.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)) return factory(name);
        lock (Gate)
        {
            var key = CacheKey(name);
            if (Loaded.TryGetValue(key, out var embedder)) return embedder;
            if (Factories.TryGetValue(name, out var factory)) embedder = factory();
            else if (LooksLikePath(name)) embedder = new GgufEmbedder(key);
            else throw new UnknownEmbedderException(name, Names);
            Loaded[key] = embedder;
            return embedder;
        }
    }

    /// <summary>Frees every cached embedder (session reset).</summary>
    public static void Clear()
    {
        lock (Gate)
        {
            foreach (var e in Loaded.Values) e.Dispose();
            Loaded.Clear();
            RemoteEmbedder.ForgetKeys();
        }
    }

    private static string CacheKey(string name)
    {
        if (Factories.TryGetValue(name, out var _) && !LooksLikePath(name)) return "name:" + CanonicalName(name);
        return Path.GetFullPath(name);
    }

    // The model id and the short name load the same embedder: cache them once.
    private static string CanonicalName(string name) =>
        name.Equals(MiniLmEmbedder.ModelId, StringComparison.OrdinalIgnoreCase) ? MiniLmEmbedder.Name.ToUpperInvariant()
        : name.Equals(ArcticXsEmbedder.ModelId, StringComparison.OrdinalIgnoreCase) ? ArcticXsEmbedder.Name.ToUpperInvariant()
        : name.ToUpperInvariant();

    private static bool LooksLikePath(string name) =>
        name.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) || name.Contains('/', StringComparison.Ordinal)
        || name.Contains('\\', StringComparison.Ordinal) || File.Exists(name);
}

/// <summary>An embedder name that is neither registered nor a GGUF file path.</summary>
public sealed class UnknownEmbedderException(string name, IReadOnlyList<string> known) : KnowledgeBaseException(
    $"Unknown embedder '{name}'. Use one of {string.Join(", ", known)}, or the path of a GGUF embedding model.")
{
    public string Name { get; } = name;
}
