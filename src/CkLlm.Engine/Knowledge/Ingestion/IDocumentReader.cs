namespace CkLlm.Engine.Knowledge.Ingestion;

/// <summary>
/// Reads one document format into sections (text that shares a heading path, page or record). Readers never write,
/// and read through <see cref="DocumentFile"/> so the size limit, encoding detection and hashing are the same for
/// every format. Register new formats with <see cref="DocumentReaderRegistry.Register"/>.
/// </summary>
public interface IDocumentReader
{
    /// <summary>Format name stored with the source ("Markdown", "Pdf", ...).</summary>
    string Format { get; }

    /// <summary>File extensions (with the dot, any case) this reader is chosen for.</summary>
    IReadOnlyCollection<string> Extensions { get; }

    /// <summary>True when the first bytes of a file with an unknown extension are this format (a magic number).</summary>
    bool Recognizes(ReadOnlySpan<byte> head);

    /// <summary>True for text formats: their bytes are decoded with the detected encoding, and a NUL byte near the start means
    /// the file is binary. False for container formats (PDF, DOCX) that parse bytes themselves.</summary>
    bool IsText { get; }

    /// <summary>The sections, lazily where the format allows (plain text streams in bounded memory).</summary>
    /// <exception cref="UnreadableDocumentException">The content is not this format.</exception>
    IEnumerable<DocumentSection> Read(DocumentFile file, CancellationToken cancellationToken);
}
