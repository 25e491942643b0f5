using System.Diagnostics;
using System.Numerics.Tensors;
using System.Security.Cryptography;
using System.Text;
using CkLlm.Engine.Knowledge.Embedding;
using CkLlm.Engine.Knowledge.Ingestion;
using CkLlm.Engine.Knowledge.Search;
using CkLlm.Engine.Knowledge.Storage;
using Microsoft.Data.Sqlite;

namespace CkLlm.Engine.Knowledge;

/// <summary>
/// An on-disk knowledge base: a directory holding <c>knowledge.db</c> (SQLite: sources, chunks, vectors, FTS5) and
/// <c>vectors.usearch</c> (HNSW cache of the vectors, with a checksum sidecar). Thread-safe. Writes take a
/// cross-process writer lock; searches never block on other processes.
/// </summary>
public sealed partial class KnowledgeBase : IDisposable
{
    public const string DatabaseFileName = "knowledge.db";
    public const string IndexFileName = "vectors.usearch";
    private static readonly TimeSpan IndexSaveInterval = TimeSpan.FromSeconds(30);

    private readonly object _writeGate = new();
    private readonly object _syncGate = new();
    private readonly KnowledgeStore _store;
    private readonly IVectorIndex _index;
    private readonly IEmbedder _embedder;
    private readonly KnowledgeBaseOptions _options;
    private readonly TextChunker _chunker;
    private readonly string _indexPath;
    private bool _indexDirty;
    private DateTime _lastSave = DateTime.UtcNow;
    private bool _disposed;

    private KnowledgeBase(string directory, KnowledgeStore store, IEmbedder embedder, KnowledgeBaseOptions options)
    {
        Directory = directory;
        _store = store;
        _embedder = embedder;
        _options = options;
        _indexPath = Path.Combine(directory, IndexFileName);
        _index = options.VectorIndexFactory(embedder.Dimensions, options);
        // The window minus the reserve for the title and heading path that go in front of every chunk.
        _chunker = new TextChunker(embedder.CountTokens, options.ChunkSize, options.ChunkOverlap, embedder.MaxTokens - ChunkContext.ReservedTokens);
    }

    /// <summary>Full path of the knowledge base directory.</summary>
    public string Directory { get; }

    /// <summary>Identity of the embedder that built the knowledge base.</summary>
    public string Embedder => _embedder.Id;

    public int Dimensions => _embedder.Dimensions;

    /// <summary>Why the HNSW index was rebuilt from the database on open (null when the saved file was current).</summary>
    public string? IndexRebuildReason { get; private set; }

    /// <summary>
    /// Opens the knowledge base in <paramref name="directory"/>, creating it on first use. Refuses an embedder other
    /// than the one recorded (<see cref="EmbedderMismatchException"/>); a damaged database gives
    /// <see cref="KnowledgeBaseCorruptException"/>.
    /// </summary>
    public static KnowledgeBase Open(string directory, KnowledgeBaseOptions? options = null)
    {
        options ??= new KnowledgeBaseOptions();
        directory = Path.GetFullPath(directory);
        if (File.Exists(directory)) throw new KnowledgeBaseException($"'{directory}' is a file; a knowledge base is a directory.");
        System.IO.Directory.CreateDirectory(directory);
        var store = new KnowledgeStore(Path.Combine(directory, DatabaseFileName));
        try
        {
            var embedder = ResolveEmbedder(directory, store, options);
            var kb = new KnowledgeBase(directory, store, embedder, options);
            kb.LoadIndex();
            return kb;
        }
        catch (SqliteException ex) when (KnowledgeStore.IsCorruption(ex))
        {
            store.Dispose();
            throw KnowledgeStore.Corrupt(Path.Combine(directory, DatabaseFileName), ex);
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    /// <summary>The embedder named in <paramref name="options"/>, else the recorded one, else the default; recorded on
    /// first use. A knowledge base built with another model refuses it (vectors of two models cannot be compared).</summary>
    private static IEmbedder ResolveEmbedder(string directory, KnowledgeStore store, KnowledgeBaseOptions options)
    {
        if (options.Embedder is not null && options.EmbeddingModel is not null)
            throw new ArgumentException("Name either an embedder or an embedding model file, not both.", nameof(options));
        var recordedId = store.GetMeta("embedder");
        var requested = options.Embedder ?? options.EmbeddingModel;
        var embedder = EmbedderRegistry.Resolve(requested ?? store.GetMeta("embedder_model"));
        var dimensions = embedder.Dimensions.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (recordedId is null)
        {
            store.SetMeta("embedder", embedder.Id);
            store.SetMeta("embedder_model", embedder.Locator);
            store.SetMeta("dimensions", dimensions);
            return embedder;
        }
        var recordedDims = store.GetMeta("dimensions");
        if (!embedder.Identifies(recordedId) || recordedDims != dimensions)
            throw new EmbedderMismatchException(
                $"The knowledge base '{directory}' was built with {recordedId}/{recordedDims} dimensions; " +
                $"{embedder.Id}/{embedder.Dimensions} cannot be mixed into it. Use the same embedder or a new knowledge base.");
        // An id recorded by an older CkLlm for the same model is brought up to date.
        if (recordedId != embedder.Id) store.SetMeta("embedder", embedder.Id);
        return embedder;
    }

    private void LoadIndex()
    {
        lock (_syncGate)
        {
            var generation = _store.Generation;
            var ids = _store.GetChunkIds();
            var reason = _index.TryLoad(_indexPath, generation, ids);
            if (reason is null) return;
            IndexRebuildReason = reason;
            _index.Rebuild(_store.ReadVectors(), generation);
            _indexDirty = true;
        }
        // Persist the rebuilt index if nobody is writing right now; otherwise the next writer will.
        try
        {
            using var writer = WriterLock.Acquire(Directory, TimeSpan.Zero, CancellationToken.None);
            SaveIndex();
        }
        catch (KnowledgeBaseBusyException) { }
    }

    /// <summary>Runs a store call under the gate (one SQLite connection is not thread-safe) and turns corruption
    /// into <see cref="KnowledgeBaseCorruptException"/>.</summary>
    private T WithCorruptionCheck<T>(Func<T> action)
    {
        try { lock (_syncGate) return action(); }
        catch (SqliteException ex) when (KnowledgeStore.IsCorruption(ex))
        {
            throw KnowledgeStore.Corrupt(Path.Combine(Directory, DatabaseFileName), ex);
        }
    }

    private static string Hash(byte[] content) => Convert.ToHexString(SHA256.HashData(content));

    public void Dispose()
    {
        if (_disposed) return;
        try { Flush(); }
        catch (Exception ex) when (ex is IOException or KnowledgeBaseException) { Trace.TraceWarning("Saving the index failed: " + ex.Message); }
        _disposed = true;
        _index.Dispose();
        _store.Dispose();
    }
}