using System.Text;
using CkLlm.Engine.Knowledge.Ingestion;
using CkLlm.Engine.Knowledge.Storage;

namespace CkLlm.Engine.Knowledge;

/// <summary>Ingestion and removal: read, chunk (with the document's context), embed, commit.</summary>
public sealed partial class KnowledgeBase
{
    /// <summary>Adds or updates a file (Markdown, text/code, HTML, PDF, DOCX, JSON, CSV, or any format registered in
    /// <see cref="DocumentReaderRegistry.Default"/>). Unchanged content is skipped unless <paramref name="force"/>.
    /// The file is streamed (hash, encoding check, then plain text in blocks), so memory does not grow with its size
    /// beyond the chunks themselves, and cancellation is honoured inside it.</summary>
    /// <exception cref="UnreadableDocumentException">Binary or malformed content.</exception>
    /// <exception cref="DocumentTooLargeException">Larger than <paramref name="maxFileSize"/> (0 = no limit).</exception>
    public IngestResult AddFile(string path, IReadOnlyDictionary<string, string>? metadata = null,
        IProgress<IngestProgress>? progress = null, bool force = false, CancellationToken cancellationToken = default,
        long maxFileSize = DocumentFile.DefaultMaxFileSize)
    {
        path = Path.GetFullPath(path);
        var file = DocumentFile.Open(path, maxFileSize, cancellationToken);
        if (!force && GetSource(path) is { } existing && existing.ContentHash == file.Hash && SameMetadata(existing.Metadata, metadata))
            return new IngestResult { Source = path, Status = IngestStatus.Skipped, Chunks = existing.Chunks, SourceId = existing.Id };
        var reader = DocumentReaderRegistry.Default.Find(path, file.Head);
        var sections = DocumentReader.ReadSections(file, reader, cancellationToken);
        var result = Ingest(path, SourceKind.File, reader.Format, file.Hash, file.Length, metadata, sections, progress, cancellationToken);
        return file.EncodingWarning is null ? result : result.WithWarning(file.EncodingWarning);
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
    internal IReadOnlyList<DocumentChunk> ChunkSections(IEnumerable<DocumentSection> sections) => sections.SelectMany(s => _chunker.Chunk(s)).ToList();

    private IngestResult Ingest(string source, SourceKind kind, string format, string hash, long size,
        IReadOnlyDictionary<string, string>? metadata, IEnumerable<DocumentSection> sections,
        IProgress<IngestProgress>? progress, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        // Sections may be streamed from a large file: the title's inputs are noted on the one pass that chunks them.
        DocumentSection? opening = null;
        string? heading = null;
        var chunks = sections.SelectMany(s =>
        {
            opening ??= s;
            if (heading is null && !string.IsNullOrWhiteSpace(s.Heading)) heading = s.Heading;
            return _chunker.Chunk(s, cancellationToken);
        }).Where(c => !string.IsNullOrWhiteSpace(c.Text)).ToList();
        var title = ChunkContext.Title(source, kind, opening, heading);
        var vectors = new List<float[]>(chunks.Count);
        int batch = Math.Max(1, _options.EmbeddingBatchSize);
        progress?.Report(new IngestProgress(source, 0, chunks.Count));
        for (int i = 0; i < chunks.Count; i += batch)
        {
            // Cancellation lands between batches; nothing of this source has been written yet.
            cancellationToken.ThrowIfCancellationRequested();
            var texts = chunks.Skip(i).Take(batch).Select(c => ChunkContext.EmbeddingText(title, c, _embedder.CountTokens, _textStyle)).ToList();
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

        return Commit(new SourceRecord(source, kind, format, hash, size, title, metadata), chunks, vectors, cancellationToken);
    }

    /// <summary>Writes a source with its embedded chunks (one transaction) and brings the vector cache along.</summary>
    private IngestResult Commit(SourceRecord source, IReadOnlyList<DocumentChunk> chunks, IReadOnlyList<float[]> vectors, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        lock (_writeGate)
        {
            using var writer = WriterLock.Acquire(_cacheDirectory, _options.WriterLockTimeout, cancellationToken);
            SyncIndex();
            bool existed = GetSource(source.Source) is not null;
            var commit = WithCorruptionCheck(() => _store.ReplaceSource(source, chunks, vectors));
            UpdateIndexAfterCommit(commit, vectors);
            return new IngestResult { Source = source.Source, Status = existed ? IngestStatus.Updated : IngestStatus.Added, Chunks = chunks.Count, SourceId = commit.SourceId };
        }
    }

    // ---------------------------------------------------------------- removal

    /// <summary>Removes sources by exact name or by id; returns one result per removed source.</summary>
    public IReadOnlyList<IngestResult> Remove(IEnumerable<KnowledgeSource> sources, CancellationToken cancellationToken = default) =>
        RemoveUnderWriterLock(sources, _ => true, cancellationToken);

    /// <summary>Removes those of <paramref name="sources"/> (from <see cref="GetMissingSources"/>) whose files are still
    /// missing, and that are still stored, once the writer lock is held: a file put back meanwhile, and added again or
    /// found unchanged by another writer, is not lost to a list made before, and a source another process pruned first
    /// is not reported twice.</summary>
    public IReadOnlyList<IngestResult> RemoveMissing(IEnumerable<KnowledgeSource> sources, CancellationToken cancellationToken = default) =>
        RemoveUnderWriterLock(sources, s => s.Kind == SourceKind.File && !File.Exists(s.Source) && GetSource(s.Source)?.Id == s.Id, cancellationToken);

    private IReadOnlyList<IngestResult> RemoveUnderWriterLock(IEnumerable<KnowledgeSource> sources, Func<KnowledgeSource, bool> stillWanted, CancellationToken cancellationToken)
    {
        var listed = sources.ToList();
        if (listed.Count == 0) return [];
        lock (_writeGate)
        {
            using var writer = WriterLock.Acquire(_cacheDirectory, _options.WriterLockTimeout, cancellationToken);
            var list = listed.Where(stillWanted).ToList();
            if (list.Count == 0) return [];
            SyncIndex();
            var commit = WithCorruptionCheck(() => _store.RemoveSources(list.Select(s => s.Id).ToList()));
            UpdateIndexAfterCommit(commit, []);
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
        try { return DocumentFile.HashFile(source.Source) != source.ContentHash; }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return false; }
    }

    /// <summary>Removes sources whose files no longer exist.</summary>
    public IReadOnlyList<IngestResult> Prune(CancellationToken cancellationToken = default) => RemoveMissing(GetMissingSources(), cancellationToken);

    private static bool SameMetadata(IReadOnlyDictionary<string, string> stored, IReadOnlyDictionary<string, string>? requested)
    {
        requested ??= new Dictionary<string, string>();
        return stored.Count == requested.Count && requested.All(p => stored.TryGetValue(p.Key, out var v) && v == p.Value);
    }
}
