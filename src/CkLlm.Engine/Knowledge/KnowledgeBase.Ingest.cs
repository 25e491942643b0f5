using System.Text;
using CkLlm.Engine.Knowledge.Ingestion;
using CkLlm.Engine.Knowledge.Storage;

namespace CkLlm.Engine.Knowledge;

/// <summary>Ingestion and removal: read, chunk (with the document's context), embed, commit.</summary>
public sealed partial class KnowledgeBase
{
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
        var title = ChunkContext.Title(source, kind, sections);
        var vectors = new List<float[]>(chunks.Count);
        int batch = Math.Max(1, _options.EmbeddingBatchSize);
        progress?.Report(new IngestProgress(source, 0, chunks.Count));
        for (int i = 0; i < chunks.Count; i += batch)
        {
            // Cancellation lands between batches; nothing of this source has been written yet.
            cancellationToken.ThrowIfCancellationRequested();
            var texts = chunks.Skip(i).Take(batch).Select(c => ChunkContext.EmbeddingText(title, c, _embedder.CountTokens)).ToList();
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
                _store.ReplaceSource(source, kind, format, hash, size, title, metadata, chunks, vectors));
            UpdateIndexAfterCommit(removed, ids, vectors);
            return new IngestResult { Source = source, Status = existed ? IngestStatus.Updated : IngestStatus.Added, Chunks = chunks.Count, SourceId = sourceId };
        }
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

    private static bool SameMetadata(IReadOnlyDictionary<string, string> stored, IReadOnlyDictionary<string, string>? requested)
    {
        requested ??= new Dictionary<string, string>();
        return stored.Count == requested.Count && requested.All(p => stored.TryGetValue(p.Key, out var v) && v == p.Value);
    }
}
