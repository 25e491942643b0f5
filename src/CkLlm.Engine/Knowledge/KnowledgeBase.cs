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
/// A knowledge base: a store that holds the truth (<see cref="IKnowledgeStore"/>: a directory's <c>knowledge.db</c>,
/// SQLite with FTS5, or a PostgreSQL database shared by many machines) and <c>vectors.usearch</c>, the HNSW cache of
/// the vectors with a checksum sidecar (next to the database for a folder, in the user's cache folder for a server).
/// Thread-safe. Writes take a cross-process writer lock on the cache folder; searches never block on other processes.
/// </summary>
public sealed partial class KnowledgeBase : IDisposable
{
    public const string DatabaseFileName = "knowledge.db";
    public const string IndexFileName = "vectors.usearch";
    private static readonly TimeSpan IndexSaveInterval = TimeSpan.FromSeconds(30);

    private readonly object _writeGate = new();
    private readonly object _syncGate = new();
    private readonly IKnowledgeStore _store;
    private readonly IVectorIndex _index;
    private readonly IEmbedder _embedder;
    private readonly KnowledgeBaseOptions _options;
    private readonly TextChunker _chunker;
    private EmbeddingTextStyle _textStyle;
    private readonly string _indexPath;
    private readonly string _cacheDirectory;
    private bool _indexDirty;
    private DateTime _lastSave = DateTime.UtcNow;
    private bool _disposed;

    private KnowledgeBase(string location, string cacheDirectory, IKnowledgeStore store, IEmbedder embedder, EmbeddingTextStyle textStyle,
        KnowledgeBaseOptions options, Func<int, IVectorIndex>? serverIndex)
    {
        Directory = location;
        _textStyle = textStyle;
        _cacheDirectory = cacheDirectory;
        _store = store;
        _embedder = embedder;
        _options = options;
        _indexPath = Path.Combine(cacheDirectory, IndexFileName);
        _index = serverIndex?.Invoke(embedder.Dimensions) ?? options.VectorIndexFactory(embedder.Dimensions, options);
        // The window minus the reserve for the title and heading path that go in front of every chunk.
        _chunker = new TextChunker(embedder.CountTokens, options.ChunkSize, options.ChunkOverlap, embedder.MaxTokens - ChunkContext.ReservedTokens);
    }

    /// <summary>Full path of the knowledge base directory, or the server URI (without password) of one in PostgreSQL.</summary>
    public string Directory { get; }

    /// <summary>Identity of the embedder that built the knowledge base.</summary>
    public string Embedder => _embedder.Id;

    public int Dimensions => _embedder.Dimensions;

    /// <summary>Why the HNSW index was rebuilt from the database on open (null when the saved file was current).</summary>
    public string? IndexRebuildReason { get; private set; }

    /// <summary>
    /// Opens the knowledge base in <paramref name="location"/> (a directory, or a <c>postgresql://</c> URI, see
    /// <see cref="KnowledgeLocation"/>), creating it on first use unless <paramref name="mustExist"/>. Refuses an
    /// embedder other than the one recorded (<see cref="EmbedderMismatchException"/>); a damaged database gives
    /// <see cref="KnowledgeBaseCorruptException"/>; a missing one with <paramref name="mustExist"/> gives
    /// <see cref="KnowledgeBaseNotFoundException"/>.
    /// </summary>
    public static KnowledgeBase Open(string location, KnowledgeBaseOptions? options = null, bool mustExist = false)
    {
        options ??= new KnowledgeBaseOptions();
        if (KnowledgeLocation.IsServer(location)) return OpenServer(location, options, mustExist);
        var directory = Path.GetFullPath(location);
        if (File.Exists(directory)) throw new KnowledgeBaseException($"'{directory}' is a file; a knowledge base is a directory.");
        if (mustExist && !KnowledgeBaseNotFoundException.Exists(directory)) throw new KnowledgeBaseNotFoundException(directory);
        System.IO.Directory.CreateDirectory(directory);
        var database = Path.Combine(directory, DatabaseFileName);
        IKnowledgeStore store;
        try { store = new SqliteKnowledgeStore(database); }
        catch (SqliteException ex) when (SqliteKnowledgeStore.IsCorruption(ex)) { throw SqliteKnowledgeStore.Corrupt(database, ex); }
        return OpenWith(directory, directory, store, options);
    }

    private static KnowledgeBase OpenServer(string uri, KnowledgeBaseOptions options, bool mustExist)
    {
        var location = Storage.Postgres.PostgresLocation.Parse(uri, options.Credential);
        var store = Storage.Postgres.PostgresKnowledgeStore.Open(location, create: !mustExist);
        // With pgvector in the database (untested here) and no index chosen by the caller, search runs in the server.
        var serverIndex = store.HasPgvector && options.VectorIndexFactory == new KnowledgeBaseOptions().VectorIndexFactory
            ? store.CreatePgvectorIndex : (Func<int, IVectorIndex>?)null;
        return OpenWith(location.Display, store.CacheDirectory, store, options, serverIndex);
    }

    private static KnowledgeBase OpenWith(string location, string cacheDirectory, IKnowledgeStore store, KnowledgeBaseOptions options,
        Func<int, IVectorIndex>? serverIndex = null)
    {
        try
        {
            System.IO.Directory.CreateDirectory(cacheDirectory);
            var (embedder, created) = ResolveEmbedder(location, store, options);
            var kb = new KnowledgeBase(location, cacheDirectory, store, embedder, ResolveTextStyle(location, store, created), options, serverIndex);
            kb.LoadIndex();
            return kb;
        }
        catch (Exception ex) when (store.Translate(ex) is { } translated)
        {
            store.Dispose();
            throw translated;
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    /// <summary>The embedder named in <paramref name="options"/>, else the recorded one, else the default; recorded on
    /// first use (<c>Created</c>: the knowledge base is new). A knowledge base built with another model refuses it
    /// (vectors of two models cannot be compared).</summary>
    private static (IEmbedder Embedder, bool Created) ResolveEmbedder(string directory, IKnowledgeStore store, KnowledgeBaseOptions options)
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
            return (embedder, true);
        }
        var recordedDims = store.GetMeta("dimensions");
        if (!embedder.Identifies(recordedId) || recordedDims != dimensions)
            throw new EmbedderMismatchException(
                $"The knowledge base '{directory}' was built with {recordedId}/{recordedDims} dimensions; " +
                $"{embedder.Id}/{embedder.Dimensions} cannot be mixed into it. Use the same embedder or a new knowledge base.");
        // An id recorded by an older CkLlm for the same model is brought up to date.
        if (recordedId != embedder.Id) store.SetMeta("embedder", embedder.Id);
        return (embedder, false);
    }

    /// <summary>A new knowledge base records today's way of preparing text for the embedder; an existing one keeps what it
    /// recorded (nothing, before there was a choice: plain text), so its vectors stay comparable.</summary>
    private static EmbeddingTextStyle ResolveTextStyle(string location, IKnowledgeStore store, bool created)
    {
        if (!created) return EmbeddingTextStyles.FromMeta(store.GetMeta(EmbeddingTextStyles.MetaKey), location);
        store.SetMeta(EmbeddingTextStyles.MetaKey, EmbeddingTextStyles.ToMeta(EmbeddingTextStyles.ForNewKnowledgeBases));
        return EmbeddingTextStyles.ForNewKnowledgeBases;
    }

    private void LoadIndex()
    {
        lock (_syncGate)
        {
            var generation = _store.Generation;
            var ids = _store.GetChunkIds();
            var reason = _index.TryLoad(_indexPath, generation, ids);
            if (reason is not null && TryLoadBehind(generation, ids)) reason = null;
            if (reason is null) return;
            IndexRebuildReason = reason;
            _index.Rebuild(_store.ReadVectors(), generation);
            _indexDirty = true;
        }
        // Persist the rebuilt index if nobody is writing right now; otherwise the next writer will.
        try
        {
            using var writer = WriterLock.Acquire(_cacheDirectory, TimeSpan.Zero, CancellationToken.None);
            SaveIndex();
        }
        catch (KnowledgeBaseBusyException) { }
    }

    /// <summary>A saved cache from an older generation is still good when the store's change log reaches back to it:
    /// load it with the chunk ids it held then, and apply what changed since (a server store's readers).</summary>
    private bool TryLoadBehind(long generation, HashSet<long> ids)
    {
        if (VectorIndexFile.SavedGeneration(_indexPath) is not { } saved || saved >= generation) return false;
        if (_store.ChangesSince(saved) is not { } changes || changes.Generation != generation) return false;
        // Chunk ids are never reused: the ids then are today's, plus the ones removed since, minus the ones added since.
        var then = new HashSet<long>(ids);
        then.UnionWith(changes.Removed);
        then.ExceptWith(changes.Added);
        if (_index.TryLoad(_indexPath, saved, then) is not null) return false;
        ApplyChanges(changes);
        return true;
    }

    /// <summary>Runs a store call under the gate (one connection is not thread-safe) and turns provider errors into
    /// engine ones (<see cref="KnowledgeBaseCorruptException"/>, a lost server connection).</summary>
    private T WithCorruptionCheck<T>(Func<T> action)
    {
        try { lock (_syncGate) return action(); }
        catch (Exception ex) when (_store.Translate(ex) is { } translated)
        {
            throw translated;
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