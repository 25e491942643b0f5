namespace CkLlm.Engine.Knowledge;

/// <summary>How a knowledge base is opened. Anything left null uses what the knowledge base already records.</summary>
public sealed class KnowledgeBaseOptions
{
    /// <summary>Path to a GGUF embedding model; null uses the embedder the knowledge base was built with, or
    /// <see cref="Embedder"/>, or the default embedder for a new one.</summary>
    public string? EmbeddingModel { get; set; }

    /// <summary>A registered embedder name ("MiniLM", "ArcticXs", see <see cref="Embedding.EmbedderRegistry"/>) or a GGUF
    /// path; null uses the one the knowledge base was built with, or the default for a new one.</summary>
    public string? Embedder { get; set; }

    /// <summary>Target chunk size in tokens of the embedder's own tokenizer (capped by the embedder's window).</summary>
    public int ChunkSize { get; set; } = 200;

    /// <summary>Tokens repeated at the start of the next chunk.</summary>
    public int ChunkOverlap { get; set; } = 32;

    /// <summary>How long a write waits for another process that holds the writer lock before failing.</summary>
    public TimeSpan WriterLockTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Chunks embedded (and checked for cancellation) per batch.</summary>
    public int EmbeddingBatchSize { get; set; } = 16;

    /// <summary>HNSW graph degree (M).</summary>
    public int Connectivity { get; set; } = 16;

    /// <summary>HNSW candidate list size while building.</summary>
    public int ExpansionAdd { get; set; } = 128;

    /// <summary>HNSW candidate list size while searching (not saved by USearch, so it is set on every open). 256 reached
    /// recall@10 1.0 at p50 &lt; 1.5 ms on clustered and anisotropic 384-dim data at 100k vectors (docs/benchmarks.md).</summary>
    public int ExpansionSearch { get; set; } = 256;

    /// <summary>Up to this many vectors, vector search scans all of them exactly instead of walking the HNSW graph
    /// (0 = always use the graph). At 10k 384-dim vectors the scan takes ~2 ms with recall 1 on any data; it holds a
    /// second copy of the vectors (at most ~30 MB at 20k x 384) (docs/benchmarks.md).</summary>
    public int ExactSearchLimit { get; set; } = 20_000;

    /// <summary>Makes the vector index from the embedder's dimensions and these options. Default: the persistent
    /// USearch HNSW index (<see cref="Storage.VectorIndex"/>); <see cref="Storage.InMemoryVectorIndex.Create"/> gives an exact
    /// in-memory one. A server-backed store plugs in here without touching ingestion or search.</summary>
    public Func<int, KnowledgeBaseOptions, Storage.IVectorIndex> VectorIndexFactory { get; set; } = Storage.VectorIndex.Create;

    /// <summary>User name and password for a knowledge base on a database server, used when its URI carries none
    /// (without either, PGPASSWORD and ~/.pgpass are tried).</summary>
    public System.Net.NetworkCredential? Credential { get; set; }
}

public enum SearchMode
{
    Hybrid,
    Vector,
    Keyword,
}

public sealed class SearchOptions
{
    public int Top { get; set; } = 5;
    public SearchMode Mode { get; set; } = SearchMode.Hybrid;

    /// <summary>Metadata key/value pairs every hit must carry (string comparison, case-insensitive).</summary>
    public IReadOnlyDictionary<string, string>? Filter { get; set; }

    /// <summary>Hits scoring below this are dropped. Scale depends on the mode: cosine similarity for Vector,
    /// BM25 for Keyword, and for Hybrid the fused score normalised to 0..1.</summary>
    public double MinScore { get; set; }

    /// <summary>At most this many hits per source (0 = no limit); further chunks of the same source are collapsed.</summary>
    public int MaxPerSource { get; set; } = 2;

    /// <summary>Chunk candidates taken from each retriever before fusion (at least 4 x Top).</summary>
    public int Candidates { get; set; } = 60;

    /// <summary>How Hybrid combines the keyword and vector evidence of each document.</summary>
    public FusionMethod Fusion { get; set; } = FusionMethod.Score;

    /// <summary>The k of reciprocal-rank fusion: 1/(k + rank) (<see cref="FusionMethod.Rrf"/> only).</summary>
    public int RrfK { get; set; } = 60;

    /// <summary>Weight of the vector evidence in Hybrid fusion; the keyword evidence weighs 1 - VectorWeight.</summary>
    public double VectorWeight { get; set; } = 0.9;

    /// <summary>Hybrid: share of a document's vector evidence that comes from the whole document (its chunks' mean,
    /// pulled towards its opening) instead of its best chunk; 0 uses the best chunk alone.</summary>
    public double DocumentWeight { get; set; } = 0.35;

    /// <summary>Keyword candidates scoring below this fraction of the best BM25 score are dropped before fusion
    /// (a weak keyword match is noise next to a good vector match).</summary>
    public double KeywordCutoff { get; set; }

    /// <summary>BM25 weights of a match in the document title, the heading path and the body.</summary>
    public KeywordWeights KeywordWeights { get; set; } = KeywordWeights.Default;
}

/// <summary>How Hybrid search fuses keyword and vector evidence (both per document: the best chunk of each).</summary>
public enum FusionMethod
{
    /// <summary>Weighted mean of the cosine similarity and the BM25 score relative to the query's best BM25 score.</summary>
    Score,

    /// <summary>Weighted reciprocal-rank fusion of the two document rankings.</summary>
    Rrf,
}

/// <summary>BM25 column weights: a query word in the title or heading path counts this many times a body match.</summary>
public sealed record KeywordWeights(double Title, double Headings, double Body)
{
    public static KeywordWeights Default { get; } = new(4.0, 2.0, 1.0);
}

/// <summary>One search result.</summary>
public sealed record KnowledgeHit
{
    public int Rank { get; init; }
    public double Score { get; init; }
    public string Text { get; init; } = "";
    public string Source { get; init; } = "";
    public string? Heading { get; init; }

    /// <summary>The document's title (man page summary, first heading or file name) as it was indexed.</summary>
    public string? Title { get; init; }
    public int? LineStart { get; init; }
    public int? LineEnd { get; init; }
    public int? Page { get; init; }
    public long ChunkId { get; init; }
    public long SourceId { get; init; }
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();

    /// <summary>"12-30" for a line range, "p. 4" for a page, or null.</summary>
    public string? Lines => LineStart is { } s ? (LineEnd is { } e && e != s ? $"{s}-{e}" : $"{s}") : null;

    /// <summary>Where the text came from, for citations: source plus line range or page.</summary>
    public string Citation =>
        Page is { } p ? $"{Source} p. {p}" : LineStart is not null ? $"{Source}:{Lines}" : Source;

    public override string ToString() => $"[{Rank}] {Citation}";
}

public enum SourceKind
{
    File,
    Text,
    Records,
}

/// <summary>A source stored in the knowledge base (a file, a text or a set of records).</summary>
public sealed class KnowledgeSource
{
    public long Id { get; init; }
    public string Source { get; init; } = "";
    public SourceKind Kind { get; init; }
    public string Format { get; init; } = "";
    public string ContentHash { get; init; } = "";
    public int Chunks { get; init; }
    public long Size { get; init; }
    public DateTime AddedUtc { get; init; }
    public DateTime UpdatedUtc { get; init; }
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();

    public override string ToString() => Source;
}

public sealed class KnowledgeStatistics
{
    public string Directory { get; init; } = "";
    public int Sources { get; init; }
    public int Chunks { get; init; }
    public string Embedder { get; init; } = "";
    public int Dimensions { get; init; }
    /// <summary>How text is prepared for the embedder: "split-identifiers" (knowledge bases created by this version) or
    /// "plain" (created before; kept so that their vectors stay comparable).</summary>
    public string EmbeddingText { get; init; } = "";
    public long DatabaseBytes { get; init; }
    public long IndexBytes { get; init; }
    public int IndexedVectors { get; init; }
    public bool IndexRebuiltOnOpen { get; init; }
}

public enum IngestStatus
{
    Added,
    Updated,
    Skipped,
    Removed,
    Failed,
}

/// <summary>The outcome for one source.</summary>
public sealed class IngestResult
{
    public string Source { get; init; } = "";
    public IngestStatus Status { get; init; }
    public int Chunks { get; init; }
    public long SourceId { get; init; }
    public string? Error { get; init; }
    /// <summary>Something the user should know about how the source was read (e.g. a legacy encoding was used).</summary>
    public string? Warning { get; init; }

    internal IngestResult WithWarning(string warning) =>
        new() { Source = Source, Status = Status, Chunks = Chunks, SourceId = SourceId, Error = Error, Warning = warning };

    public override string ToString() => $"{Status} {Source} ({Chunks} chunks)";
}

/// <summary>Reported while a source is being embedded.</summary>
public readonly record struct IngestProgress(string Source, int ChunksDone, int ChunksTotal);

/// <summary>A structured record (Import-Csv row, JSON object) to store as one chunk.</summary>
public sealed class KnowledgeRecord
{
    public KnowledgeRecord(IReadOnlyList<KeyValuePair<string, string?>> fields) => Fields = fields;

    /// <summary>Fields in order.</summary>
    public IReadOnlyList<KeyValuePair<string, string?>> Fields { get; }

    /// <summary>Field names whose values form the text; null or empty renders every field as "Name: value".</summary>
    public IReadOnlyList<string>? TextFields { get; init; }
}

/// <summary>Base of every knowledge-base error; the message is meant for the user.</summary>
public class KnowledgeBaseException : Exception
{
    public KnowledgeBaseException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>Another process holds the writer lock longer than the timeout.</summary>
public sealed class KnowledgeBaseBusyException : KnowledgeBaseException
{
    public KnowledgeBaseBusyException(string message) : base(message) { }
}

/// <summary>The database file is damaged (truncated, overwritten, not a database).</summary>
public sealed class KnowledgeBaseCorruptException : KnowledgeBaseException
{
    public KnowledgeBaseCorruptException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>The embedder does not match the one the knowledge base was built with.</summary>
public sealed class EmbedderMismatchException : KnowledgeBaseException
{
    public EmbedderMismatchException(string message) : base(message) { }
}

/// <summary>A file that cannot be read as text (binary, unreadable, malformed).</summary>
public sealed class UnreadableDocumentException : KnowledgeBaseException
{
    public UnreadableDocumentException(string path, string reason, Exception? inner = null)
        : base($"Cannot read '{path}': {reason}", inner) => Path = path;

    public string Path { get; }
}

/// <summary>An <see cref="IProgress{T}"/> that reports on the caller's thread (unlike <see cref="Progress{T}"/>, which
/// posts to the thread pool), so a cmdlet can call WriteProgress from it.</summary>
public sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
