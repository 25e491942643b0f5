using CkLlm.Engine.Knowledge.Ingestion;

namespace CkLlm.Engine.Knowledge.Storage;

/// <summary>Row of the chunks table as search needs it.</summary>
internal sealed record StoredChunk(long Id, long SourceId, string Source, string Text, string? Heading,
    int? LineStart, int? LineEnd, int? Page, IReadOnlyDictionary<string, string> Metadata, string? Title = null);

/// <summary>A chunk's text with what tells whether it continues the previous chunk.</summary>
internal sealed record StoredChunkText(string Source, SourceKind Kind, string Text, string? Heading, int? LineStart, int? LineEnd, int? Page);

/// <summary>What a source row holds besides its chunks.</summary>
internal sealed record SourceRecord(string Source, SourceKind Kind, string Format, string ContentHash, long Size,
    string? Title, IReadOnlyDictionary<string, string>? Metadata)
{
    public static SourceRecord Of(KnowledgeSource source, string? title) =>
        new(source.Source, source.Kind, source.Format, source.ContentHash, source.Size, title, source.Metadata.Count == 0 ? null : source.Metadata);
}

/// <summary>One committed write: the source written (0 for removals), its new chunk ids, the chunk ids it replaced or
/// removed, and the generation the store reached with it.</summary>
internal sealed record StoreCommit(long SourceId, long[] ChunkIds, long[] RemovedChunkIds, long Generation);

/// <summary>Chunk ids added and removed after some generation, up to <see cref="Generation"/> (from a change log).</summary>
internal sealed record StoreChanges(IReadOnlyList<long> Added, IReadOnlyList<long> Removed, long Generation);

/// <summary>A whole source with its chunks and vectors, as <see cref="IKnowledgeStore.ExportSource"/> reads it back
/// for copying to another store without embedding again.</summary>
internal sealed record ExportedSource(SourceRecord Source, IReadOnlyList<DocumentChunk> Chunks, IReadOnlyList<float[]> Vectors);

/// <summary>
/// What a knowledge base needs from the place that holds the truth: sources, chunks with their metadata and vectors,
/// keyword search over title, headings and body, a generation number bumped by every write (and, where the store keeps
/// one, a change log), and a few meta values (embedder identity). Implementations: <see cref="SqliteKnowledgeStore"/>
/// (a folder) and <see cref="Postgres.PostgresKnowledgeStore"/> (a database server shared by many machines). The vector
/// index is a separate seam (<see cref="IVectorIndex"/>), a cache the knowledge base keeps in step with the store.
/// </summary>
/// <remarks>Not thread-safe: the knowledge base serialises calls. Every write is one transaction.</remarks>
internal interface IKnowledgeStore : IDisposable
{
    /// <summary>Where the store lives, for messages and error targets (no password).</summary>
    string Location { get; }

    /// <summary>Bytes the store occupies (the database file, or the server's tables).</summary>
    long SizeBytes { get; }

    /// <summary>The number of committed writes; index caches record the generation they reflect.</summary>
    long Generation { get; }

    string? GetMeta(string key);

    void SetMeta(string key, string value);

    KnowledgeSource? FindSource(string source);

    IReadOnlyList<KnowledgeSource> GetSources();

    int CountSources();

    int CountChunks();

    /// <summary>Replaces a source and all its chunks in one transaction: after a crash it is either fully old or fully new.</summary>
    StoreCommit ReplaceSource(SourceRecord source, IReadOnlyList<DocumentChunk> chunks, IReadOnlyList<float[]> vectors);

    /// <summary>Removes sources by id in one transaction; the commit lists the chunk ids that went with them.</summary>
    StoreCommit RemoveSources(IReadOnlyCollection<long> sourceIds);

    HashSet<long> GetChunkIds();

    /// <summary>Streams (id, vector) pairs, optionally only for the given ids.</summary>
    IEnumerable<(long Id, float[] Vector)> ReadVectors(IReadOnlyCollection<long>? ids = null);

    /// <summary>The chunk vectors of each of the given sources, in chunk order (the document-level search evidence).</summary>
    Dictionary<long, List<float[]>> ReadSourceVectors(IReadOnlyCollection<long> sourceIds);

    /// <summary>Chunks added and removed after <paramref name="generation"/>, or null when the store keeps no change log
    /// that reaches back that far (the caller then compares all chunk ids).</summary>
    StoreChanges? ChangesSince(long generation);

    Dictionary<long, StoredChunk> GetChunks(IReadOnlyCollection<long> ids);

    /// <summary>The source id of each of the given chunks that still exists.</summary>
    Dictionary<long, long> SourceIdsOf(IReadOnlyCollection<long> ids);

    /// <summary>Ids of chunks whose metadata matches every pair (case-insensitive), for filtered exact search.</summary>
    HashSet<long> FilterChunkIds(IReadOnlyDictionary<string, string> filter);

    /// <summary>BM25-style keyword search; (chunk id, score) best first, higher is better. <paramref name="weights"/>
    /// weigh a match in the document title, the heading path and the body.</summary>
    List<(long Id, double Score)> KeywordSearch(string query, int limit, KeywordWeights weights);

    /// <summary>What hybrid search needs from the keyword side: the best <paramref name="limit"/> hits (as
    /// <see cref="KeywordSearch"/>) and the keyword scores of those of <paramref name="alsoScore"/> that are not among
    /// them; chunks without a query word are left out of both.</summary>
    (List<(long Id, double Score)> Top, List<(long Id, double Score)> Others) KeywordSearchAndScores(string query, int limit,
        IReadOnlyCollection<long> alsoScore, KeywordWeights weights);

    /// <summary>Every chunk's text and position, by source name then chunk order: what the documents looked like.</summary>
    List<StoredChunkText> ReadChunkTexts();

    /// <summary>One source (from <see cref="GetSources"/>) with its chunks in order and their vectors.</summary>
    ExportedSource ExportSource(KnowledgeSource source);

    /// <summary>The engine exception a provider exception stands for (damage, lost connection), or null to let it pass.</summary>
    KnowledgeBaseException? Translate(Exception exception);
}
