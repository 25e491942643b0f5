using CkLlm.Engine.Knowledge.Ingestion.Readers;

namespace CkLlm.Engine.Knowledge.Ingestion;

/// <summary>
/// Chooses the reader for a file: by extension first, then by content (magic numbers) for unknown extensions, and
/// plain text as the fallback (source code, logs, config files). Thread-safe; a later registration for an extension
/// replaces the earlier one.
/// </summary>
public sealed class DocumentReaderRegistry
{
    private readonly object _gate = new();
    private readonly Dictionary<string, IDocumentReader> _byExtension = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<IDocumentReader> _readers = [];

    /// <summary>The readers Add-CkKnowledge and Start-CkFineTune use.</summary>
    public static DocumentReaderRegistry Default { get; } = CreateDefault();

    /// <summary>Read for any extension no reader claims.</summary>
    public IDocumentReader Fallback { get; private set; } = new TextDocumentReader();

    public static DocumentReaderRegistry CreateDefault()
    {
        var registry = new DocumentReaderRegistry();
        registry.Register(new TextDocumentReader());
        registry.Register(new MarkdownDocumentReader());
        registry.Register(new HtmlDocumentReader());
        registry.Register(new PdfDocumentReader());
        registry.Register(new DocxDocumentReader());
        registry.Register(new JsonDocumentReader());
        registry.Register(new CsvDocumentReader(",", ".csv"));
        registry.Register(new CsvDocumentReader("\t", ".tsv"));
        return registry;
    }

    public void Register(IDocumentReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        lock (_gate)
        {
            _readers.Add(reader);
            foreach (var extension in reader.Extensions) _byExtension[extension] = reader;
        }
    }

    public IReadOnlyList<IDocumentReader> Readers
    {
        get { lock (_gate) return [.. _readers]; }
    }

    /// <summary>The reader for <paramref name="path"/>, looking at <paramref name="head"/> (the first bytes) when the
    /// extension is unknown.</summary>
    public IDocumentReader Find(string path, ReadOnlySpan<byte> head)
    {
        lock (_gate)
        {
            if (_byExtension.TryGetValue(Path.GetExtension(path), out var byExtension)) return byExtension;
            foreach (var reader in _readers)
            {
                if (reader.Recognizes(head)) return reader;
            }
            return Fallback;
        }
    }
}
