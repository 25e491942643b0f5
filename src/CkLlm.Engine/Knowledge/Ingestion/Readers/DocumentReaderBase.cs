namespace CkLlm.Engine.Knowledge.Ingestion.Readers;

/// <summary>What every built-in reader shares: its format name, extensions and whether it decodes text.</summary>
public abstract class DocumentReaderBase(string format, bool isText, params string[] extensions) : IDocumentReader
{
    public string Format => format;
    public IReadOnlyCollection<string> Extensions { get; } = extensions;
    public bool IsText => isText;
    public virtual bool Recognizes(ReadOnlySpan<byte> head) => false;
    public abstract IEnumerable<DocumentSection> Read(DocumentFile file, CancellationToken cancellationToken);
}
