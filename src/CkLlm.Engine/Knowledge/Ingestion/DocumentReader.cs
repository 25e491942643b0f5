using System.Globalization;
using System.Text;

namespace CkLlm.Engine.Knowledge.Ingestion;

/// <summary>The text of one document, split into sections that each keep their lines/page and heading path.</summary>
internal sealed record ReadDocument(string Format, IReadOnlyList<DocumentSection> Sections);

/// <summary>Reads in-memory content through <see cref="DocumentReaderRegistry.Default"/> (tests and callers that
/// hold bytes); files go through <see cref="DocumentFile"/> and the registry directly.</summary>
internal static class DocumentReader
{
    /// <exception cref="UnreadableDocumentException">Binary or malformed content.</exception>
    public static ReadDocument Read(string path, byte[] content)
    {
        var file = DocumentFile.FromBytes(path, content);
        var reader = DocumentReaderRegistry.Default.Find(path, file.Head);
        return new ReadDocument(reader.Format, [.. ReadSections(file, reader, CancellationToken.None)]);
    }

    /// <summary>The sections of <paramref name="file"/> as <paramref name="reader"/> reads them; a binary file given
    /// to a text reader, or content the reader cannot parse, is <see cref="UnreadableDocumentException"/>.</summary>
    public static IEnumerable<DocumentSection> ReadSections(DocumentFile file, IDocumentReader reader, CancellationToken cancellationToken)
    {
        if (reader.IsText && file.LooksBinary) throw new UnreadableDocumentException(file.Path, "it is a binary file, not text");
        using var sections = Open(file, reader, cancellationToken);
        while (true)
        {
            DocumentSection section;
            try
            {
                if (!sections.MoveNext()) yield break;
                section = sections.Current;
            }
            catch (Exception ex) when (ex is not (UnreadableDocumentException or OperationCanceledException))
            {
                throw NotValid(file, reader, ex);
            }
            yield return section;
        }
    }

    private static IEnumerator<DocumentSection> Open(DocumentFile file, IDocumentReader reader, CancellationToken cancellationToken)
    {
        try { return reader.Read(file, cancellationToken).GetEnumerator(); }
        catch (Exception ex) when (ex is not (UnreadableDocumentException or OperationCanceledException))
        {
            throw NotValid(file, reader, ex);
        }
    }

    private static UnreadableDocumentException NotValid(DocumentFile file, IDocumentReader reader, Exception ex)
    {
        var format = Path.GetExtension(file.Path).TrimStart('.').ToUpperInvariant();
        return new UnreadableDocumentException(file.Path, $"not a valid {(format.Length > 0 ? format : reader.Format)} file ({ex.Message})", ex);
    }

    public static ReadDocument ReadMarkdown(string text) => Readers.MarkdownDocumentReader.ReadMarkdown(text);

    public static ReadDocument ReadHtml(string html) => Readers.HtmlDocumentReader.ReadHtml(html);
}

/// <summary>Renders a record as "Name: value" lines; fields not chosen as text become metadata.</summary>
internal static class RecordRenderer
{
    public static DocumentSection ToSection(KnowledgeRecord record, int index, int? line)
    {
        var textFields = record.TextFields is { Count: > 0 } tf ? new HashSet<string>(tf, StringComparer.OrdinalIgnoreCase) : null;
        var sb = new StringBuilder();
        var metadata = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase) { ["record"] = index.ToString(CultureInfo.InvariantCulture) };
        foreach (var (name, value) in record.Fields)
        {
            if (textFields is null || textFields.Contains(name))
            {
                if (!string.IsNullOrWhiteSpace(value))
                    sb.Append(textFields is { Count: 1 } ? "" : name + ": ").Append(value).Append('\n');
            }
            else if (value is not null)
            {
                metadata[name] = value;
            }
        }
        return new DocumentSection(sb.ToString().TrimEnd('\n'), line, null, null, metadata) { IsRecord = true };
    }
}

/// <summary>RFC 4180 CSV: quoted fields may hold separators, doubled quotes and line breaks.</summary>
internal static class CsvParser
{
    public static List<(int Line, List<string> Fields)> Parse(string text, char separator)
    {
        var rows = new List<(int, List<string>)>();
        var fields = new List<string>();
        var field = new StringBuilder();
        bool quoted = false, any = false;
        int line = 1, rowLine = 1;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (quoted)
            {
                if (c == '"')
                {
                    if (i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i++; }
                    else quoted = false;
                }
                else
                {
                    if (c == '\n') line++;
                    field.Append(c);
                }
                continue;
            }
            if (c == '"' && field.Length == 0) { quoted = true; any = true; }
            else if (c == separator) { fields.Add(field.ToString()); field.Clear(); any = true; }
            else if (c == '\n')
            {
                fields.Add(field.ToString()); field.Clear();
                rows.Add((rowLine, fields)); fields = new List<string>(); any = false;
                line++; rowLine = line;
            }
            else if (c != '\r') { field.Append(c); any = true; }
        }
        if (any || field.Length > 0) { fields.Add(field.ToString()); rows.Add((rowLine, fields)); }
        return rows;
    }
}
