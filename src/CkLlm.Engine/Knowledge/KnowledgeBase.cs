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
public sealed class KnowledgeBase : IDisposable
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
        _chunker = new TextChunker(embedder.CountTokens, options.ChunkSize, options.ChunkOverlap, embedder.MaxTokens);
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
            var recordedId = store.GetMeta("embedder");
            var recordedModel = store.GetMeta("embedder_model");
            var requested = options.EmbeddingModel ?? recordedModel;
            var embedder = EmbedderCache.Get(requested);
            if (recordedId is null)
            {
                store.SetMeta("embedder", embedder.Id);
                store.SetMeta("embedder_model", embedder is GgufEmbedder g ? g.ModelPath : EmbedderCache.MiniLmKey);
                store.SetMeta("dimensions", embedder.Dimensions.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
            else
            {
                var recordedDims = store.GetMeta("dimensions");
                if (recordedId != embedder.Id || recordedDims != embedder.Dimensions.ToString(System.Globalization.CultureInfo.InvariantCulture))
                    throw new EmbedderMismatchException(
                        $"The knowledge base '{directory}' was built with {recordedId}/{recordedDims} dimensions; " +
                        $"{embedder.Id}/{embedder.Dimensions} cannot be mixed into it. Use the same embedding model or a new knowledge base.");
            }
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

    /// <summary>Brings the in-memory index up to the database (another process may have written).</summary>
    private void SyncIndex()
    {
        lock (_syncGate)
        {
            var generation = _store.Generation;
            if (generation == _index.Generation) return;
            var dbIds = _store.GetChunkIds();
            var indexed = _index.Keys;
            var stale = indexed.Where(id => !dbIds.Contains(id)).ToList();
            var indexedSet = indexed as IReadOnlySet<long> ?? indexed.ToHashSet();
            var missing = dbIds.Where(id => !indexedSet.Contains(id)).ToList();
            _index.Remove(stale);
            foreach (var batch in _store.ReadVectors(missing).Chunk(1024))
                _index.Add(batch.Select(b => b.Id).ToArray(), batch.Select(b => b.Vector).ToArray());
            _index.Generation = generation;
            if (stale.Count > 0 || missing.Count > 0) _indexDirty = true;
        }
    }

    // ---------------------------------------------------------------- ingestion

    /// <summary>Adds or updates a file (Markdown, text/code, HTML, PDF, DOCX, JSON, CSV). Unchanged content is skipped
    /// unless <paramref name="force"/>. Throws <see cref="UnreadableDocumentException"/> for binary or malformed files.</summary>
    public IngestResult AddFile(string path, IReadOnlyDictionary<string, string>? metadata = null,
        IProgress<IngestProgress>? progress = null, bool force = false, CancellationToken cancellationToken = default)
    {
        path = Path.GetFullPath(path);
        byte[] content;
        try { content = File.ReadAllBytes(path); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new UnreadableDocumentException(path, ex.Message, ex);
        }
        var hash = Hash(content);
        if (!force && GetSource(path) is { } existing && existing.ContentHash == hash && SameMetadata(existing.Metadata, metadata))
            return new IngestResult { Source = path, Status = IngestStatus.Skipped, Chunks = existing.Chunks, SourceId = existing.Id };
        var doc = DocumentReader.Read(path, content);
        return Ingest(path, SourceKind.File, doc.Format, hash, content.LongLength, metadata, doc.Sections, progress, cancellationToken);
    }

    /// <summary>Adds text under a source name (default "text:" + content hash); same name and content is skipped.</summary>
    public IngestResult AddText(string text, string? source = null, IReadOnlyDictionary<string, string>? metadata = null,
        IProgress<IngestProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(text);
        var bytes = Encoding.UTF8.GetBytes(text);
        var hash = Hash(bytes);
        source ??= "text:" + hash[..12].ToLowerInvariant();
        if (GetSource(source) is { } existing && existing.ContentHash == hash && SameMetadata(existing.Metadata, metadata))
            return new IngestResult { Source = source, Status = IngestStatus.Skipped, Chunks = existing.Chunks, SourceId = existing.Id };
        var sections = new[] { new DocumentSection(text.Replace("\r\n", "\n"), 1, null, null) };
        return Ingest(source, SourceKind.Text, "Text", hash, bytes.LongLength, metadata, sections, progress, cancellationToken);
    }

    /// <summary>Adds structured records (one chunk each, "Name: value" lines) under one source name.</summary>
    public IngestResult AddRecords(IEnumerable<KnowledgeRecord> records, string source, IReadOnlyDictionary<string, string>? metadata = null,
        IProgress<IngestProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(source);
        var sections = records.Select((r, i) => RecordRenderer.ToSection(r, i + 1, null)).ToList();
        var canonical = new StringBuilder();
        foreach (var s in sections)
        {
            canonical.Append(s.Text).Append('\u001e');
            foreach (var (k, v) in s.Metadata ?? new Dictionary<string, string>()) canonical.Append(k).Append('=').Append(v).Append('\u001f');
        }
        var bytes = Encoding.UTF8.GetBytes(canonical.ToString());
        var hash = Hash(bytes);
        if (GetSource(source) is { } existing && existing.ContentHash == hash && SameMetadata(existing.Metadata, metadata))
            return new IngestResult { Source = source, Status = IngestStatus.Skipped, Chunks = existing.Chunks, SourceId = existing.Id };
        return Ingest(source, SourceKind.Records, "Records", hash, bytes.LongLength, metadata, sections, progress, cancellationToken);
    }

    /// <summary>Chunks a document exactly as ingestion would (for tests and benchmarks).</summary>
    internal IReadOnlyList<DocumentChunk> ChunkSections(IEnumerable<DocumentSection> sections) => sections.SelectMany(_chunker.Chunk).ToList();

    private IngestResult Ingest(string source, SourceKind kind, string format, string hash, long size,
        IReadOnlyDictionary<string, string>? metadata, IReadOnlyList<DocumentSection> sections,
        IProgress<IngestProgress>? progress, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var chunks = sections.SelectMany(_chunker.Chunk).Where(c => !string.IsNullOrWhiteSpace(c.Text)).ToList();
        var vectors = new List<float[]>(chunks.Count);
        int batch = Math.Max(1, _options.EmbeddingBatchSize);
        progress?.Report(new IngestProgress(source, 0, chunks.Count));
        for (int i = 0; i < chunks.Count; i += batch)
        {
            // Cancellation lands between batches; nothing of this source has been written yet.
            cancellationToken.ThrowIfCancellationRequested();
            var texts = chunks.Skip(i).Take(batch).Select(EmbeddingText).ToList();
            var embedded = _embedder.Embed(texts, cancellationToken);
            foreach (var v in embedded)
            {
                if (v.Length != _embedder.Dimensions)
                    throw new KnowledgeBaseException($"The embedder returned a {v.Length}-dimension vector; expected {_embedder.Dimensions}.");
                vectors.Add(v);
            }
            progress?.Report(new IngestProgress(source, vectors.Count, chunks.Count));
        }
        cancellationToken.ThrowIfCancellationRequested();

        lock (_writeGate)
        {
            using var writer = WriterLock.Acquire(Directory, _options.WriterLockTimeout, cancellationToken);
            SyncIndex();
            bool existed = GetSource(source) is not null;
            var (sourceId, ids, removed) = WithCorruptionCheck(() =>
                _store.ReplaceSource(source, kind, format, hash, size, metadata, chunks, vectors));
            UpdateIndexAfterCommit(removed, ids, vectors);
            return new IngestResult { Source = source, Status = existed ? IngestStatus.Updated : IngestStatus.Added, Chunks = chunks.Count, SourceId = sourceId };
        }
    }

    /// <summary>The heading path is part of what the embedder sees: it names what the chunk is about.</summary>
    private static string EmbeddingText(DocumentChunk chunk) =>
        chunk.Heading is null || chunk.Text.Contains(chunk.Heading, StringComparison.Ordinal) ? chunk.Text : chunk.Heading + "\n" + chunk.Text;

    private void UpdateIndexAfterCommit(IReadOnlyCollection<long> removed, IReadOnlyList<long> added, IReadOnlyList<float[]> vectors)
    {
        lock (_syncGate)
        {
            _index.Remove(removed);
            if (added.Count > 0) _index.Add(added, vectors);
            _index.Generation = _store.Generation;
            _indexDirty = true;
        }
        if (DateTime.UtcNow - _lastSave > IndexSaveInterval) SaveIndex();
    }

    // ---------------------------------------------------------------- removal

    /// <summary>Removes sources by exact name or by id; returns one result per removed source.</summary>
    public IReadOnlyList<IngestResult> Remove(IEnumerable<KnowledgeSource> sources, CancellationToken cancellationToken = default)
    {
        var list = sources.ToList();
        if (list.Count == 0) return [];
        lock (_writeGate)
        {
            using var writer = WriterLock.Acquire(Directory, _options.WriterLockTimeout, cancellationToken);
            SyncIndex();
            var removed = WithCorruptionCheck(() => _store.RemoveSources(list.Select(s => s.Id).ToList()));
            UpdateIndexAfterCommit(removed, [], []);
            return list.Select(s => new IngestResult { Source = s.Source, Status = IngestStatus.Removed, Chunks = s.Chunks, SourceId = s.Id }).ToList();
        }
    }

    /// <summary>Sources stored from files that no longer exist.</summary>
    public IReadOnlyList<KnowledgeSource> GetMissingSources() =>
        GetSources().Where(s => s.Kind == SourceKind.File && !File.Exists(s.Source)).ToList();

    /// <summary>True when a file source's file exists and its content hash differs from the stored one.</summary>
    public bool HasChanged(KnowledgeSource source)
    {
        if (source.Kind != SourceKind.File || !File.Exists(source.Source)) return false;
        try { return Hash(File.ReadAllBytes(source.Source)) != source.ContentHash; }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return false; }
    }

    /// <summary>Removes sources whose files no longer exist.</summary>
    public IReadOnlyList<IngestResult> Prune(CancellationToken cancellationToken = default) => Remove(GetMissingSources(), cancellationToken);

    // ---------------------------------------------------------------- queries

    public IReadOnlyList<KnowledgeSource> GetSources() => WithCorruptionCheck(_store.GetSources);

    public KnowledgeSource? GetSource(string source) => WithCorruptionCheck(() => _store.FindSource(source));

    public KnowledgeStatistics GetStatistics()
    {
        var db = new FileInfo(Path.Combine(Directory, DatabaseFileName));
        var idx = new FileInfo(_indexPath);
        return WithCorruptionCheck(() => new KnowledgeStatistics
        {
            Directory = Directory,
            Sources = _store.CountSources(),
            Chunks = _store.CountChunks(),
            Embedder = _embedder.Id,
            Dimensions = _embedder.Dimensions,
            DatabaseBytes = db.Exists ? db.Length : 0,
            IndexBytes = idx.Exists ? idx.Length : 0,
            IndexedVectors = _index.Count,
            IndexRebuiltOnOpen = IndexRebuildReason is not null,
        });
    }

    /// <summary>Hybrid (default), vector or keyword search.</summary>
    public IReadOnlyList<KnowledgeHit> Search(string query, SearchOptions? options = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(query);
        options ??= new SearchOptions();
        if (options.Top <= 0) throw new ArgumentOutOfRangeException(nameof(options), options.Top, "Top must be at least 1.");
        if (string.IsNullOrWhiteSpace(query)) return [];
        // Embed outside the gate: it is the slow part and needs no database.
        var queryVector = options.Mode == SearchMode.Keyword ? null : _embedder.Embed([query])[0];
        return WithCorruptionCheck(() => SearchCore(query, queryVector, options));
    }

    private IReadOnlyList<KnowledgeHit> SearchCore(string query, float[]? queryVector, SearchOptions options)
    {
        SyncIndex();
        var filterIds = options.Filter is { Count: > 0 } f ? _store.FilterChunkIds(f) : null;
        int candidates = Math.Max(options.Candidates, options.Top * 4);

        List<(long Id, double Score)> keyword = [];
        List<(long Id, double Score)> vector = [];
        if (options.Mode != SearchMode.Vector)
        {
            keyword = _store.KeywordSearch(query, filterIds is null ? candidates : candidates * 20);
            if (filterIds is not null) keyword = keyword.Where(k => filterIds.Contains(k.Id)).Take(candidates).ToList();
        }
        if (queryVector is { } qv)
        {
            vector = filterIds is not null ? ExactSearch(qv, filterIds, candidates) : VectorSearch(qv, candidates);
        }

        List<(long Id, double Score)> ranked = options.Mode switch
        {
            SearchMode.Keyword => keyword,
            SearchMode.Vector => vector,
            _ => RankFusion.Fuse(options.RrfK, (keyword.Select(k => k.Id).ToList(), 1.0), (vector.Select(v => v.Id).ToList(), options.VectorWeight))
                .Select(p => (p.Id, p.Score / ((1.0 + options.VectorWeight) / (options.RrfK + 1)))).ToList(),
        };

        var chunks = _store.GetChunks(ranked.Take(candidates * 2).Select(r => r.Id).ToList());
        var hits = new List<KnowledgeHit>();
        var perSource = new Dictionary<long, int>();
        foreach (var (id, score) in ranked)
        {
            if (score < options.MinScore) break;
            if (!chunks.TryGetValue(id, out var c)) continue; // removed by another process meanwhile
            perSource.TryGetValue(c.SourceId, out var n);
            if (options.MaxPerSource > 0 && n >= options.MaxPerSource) continue;
            perSource[c.SourceId] = n + 1;
            hits.Add(new KnowledgeHit
            {
                Rank = hits.Count + 1, Score = Math.Round(score, 6), Text = c.Text, Source = c.Source, Heading = c.Heading,
                LineStart = c.LineStart, LineEnd = c.LineEnd, Page = c.Page, ChunkId = c.Id, SourceId = c.SourceId, Metadata = c.Metadata,
            });
            if (hits.Count == options.Top) break;
        }
        return hits;
    }

    private List<(long Id, double Score)> VectorSearch(float[] query, int count) =>
        _index.Search(query, count).Select(r => (r.Id, (double)r.Similarity)).ToList();

    /// <summary>Exact cosine over a filtered subset (vectors are normalised, so the dot product is the cosine).</summary>
    private List<(long Id, double Score)> ExactSearch(float[] query, IReadOnlyCollection<long> ids, int count)
    {
        var scored = new List<(long, double)>();
        foreach (var (id, v) in _store.ReadVectors(ids))
            scored.Add((id, TensorPrimitives.CosineSimilarity(query, v)));
        return scored.OrderByDescending(s => s.Item2).Take(count).ToList();
    }

    /// <summary>Saves the HNSW index now if it changed (done automatically every 30 s of writing and on Dispose).</summary>
    public void Flush()
    {
        if (!_indexDirty) return;
        lock (_writeGate)
        {
            try
            {
                using var writer = WriterLock.Acquire(Directory, _options.WriterLockTimeout, CancellationToken.None);
                SyncIndex();
                SaveIndex();
            }
            catch (KnowledgeBaseBusyException)
            {
                // Another writer owns the files now and will save an index that includes our work; the database
                // is the truth either way.
            }
        }
    }

    private void SaveIndex()
    {
        lock (_syncGate)
        {
            // Only a file that matches the committed database may be written.
            if (_index.Generation != _store.Generation) return;
            _index.Save(_indexPath);
            _indexDirty = false;
            _lastSave = DateTime.UtcNow;
        }
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

    private static bool SameMetadata(IReadOnlyDictionary<string, string> stored, IReadOnlyDictionary<string, string>? requested)
    {
        requested ??= new Dictionary<string, string>();
        return stored.Count == requested.Count && requested.All(p => stored.TryGetValue(p.Key, out var v) && v == p.Value);
    }

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
