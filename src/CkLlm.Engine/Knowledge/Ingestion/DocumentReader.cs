using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using DocumentFormat.OpenXml.Packaging;
using DocumentFormat.OpenXml.Wordprocessing;
using Markdig;
using Markdig.Syntax;
using UglyToad.PdfPig;
using UglyToad.PdfPig.DocumentLayoutAnalysis.TextExtractor;

namespace CkLlm.Engine.Knowledge.Ingestion;

/// <summary>The text of one document, split into sections that each keep their lines/page and heading path.</summary>
internal sealed record ReadDocument(string Format, IReadOnlyList<DocumentSection> Sections);

/// <summary>Reads the supported formats into sections. Throws <see cref="UnreadableDocumentException"/> for
/// binary or malformed files.</summary>
internal static partial class DocumentReader
{
    private static readonly HashSet<string> MarkdownExtensions = new(StringComparer.OrdinalIgnoreCase) { ".md", ".markdown", ".mdx" };
    private static readonly HashSet<string> HtmlExtensions = new(StringComparer.OrdinalIgnoreCase) { ".html", ".htm", ".xhtml" };

    public static ReadDocument Read(string path, byte[] content)
    {
        var ext = Path.GetExtension(path);
        try
        {
            return ext.ToLowerInvariant() switch
            {
                ".pdf" => ReadPdf(content),
                ".docx" => ReadDocx(content),
                ".json" => ReadJson(DecodeText(path, content)),
                ".csv" => ReadCsv(DecodeText(path, content), ','),
                ".tsv" => ReadCsv(DecodeText(path, content), '\t'),
                _ when MarkdownExtensions.Contains(ext) => ReadMarkdown(DecodeText(path, content)),
                _ when HtmlExtensions.Contains(ext) => ReadHtml(DecodeText(path, content)),
                _ => new ReadDocument("Text", [new DocumentSection(DecodeText(path, content), 1, null, null)]),
            };
        }
        catch (UnreadableDocumentException) { throw; }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw new UnreadableDocumentException(path, $"not a valid {ext.TrimStart('.').ToUpperInvariant()} file ({ex.Message})", ex);
        }
    }

    /// <summary>UTF-8 (with or without BOM, or UTF-16 with BOM); a NUL byte in the first 8 KB means binary.</summary>
    internal static string DecodeText(string path, byte[] content)
    {
        bool utf16 = content.Length >= 2 && ((content[0] == 0xFF && content[1] == 0xFE) || (content[0] == 0xFE && content[1] == 0xFF));
        if (!utf16 && Array.IndexOf(content, (byte)0, 0, Math.Min(content.Length, 8192)) >= 0)
            throw new UnreadableDocumentException(path, "it is a binary file, not text");
        using var reader = new StreamReader(new MemoryStream(content), Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        return reader.ReadToEnd().Replace("\r\n", "\n");
    }

    public static ReadDocument ReadMarkdown(string text)
    {
        var doc = Markdown.Parse(text, new MarkdownPipelineBuilder().UseAdvancedExtensions().Build());
        var sections = new List<DocumentSection>();
        var headings = new List<(int Level, string Text)>();
        int sectionStart = 0, sectionLine = 0;

        // Returns false for a section that is only its heading line: that heading then stays in front of the next
        // section instead of becoming a chunk of its own.
        bool Close(int endOffset)
        {
            if (endOffset <= sectionStart) return true;
            var body = text[sectionStart..endOffset];
            if (string.IsNullOrWhiteSpace(body)) return true;
            int firstBreak = body.IndexOf('\n');
            bool onlyHeading = headings.Count > 0 && (firstBreak < 0 || string.IsNullOrWhiteSpace(body[firstBreak..]));
            if (onlyHeading) return false;
            sections.Add(new DocumentSection(body, sectionLine + 1, null, headings.Count == 0 ? null : string.Join(" > ", headings.Select(h => h.Text))));
            return true;
        }

        foreach (var block in doc)
        {
            if (block is not HeadingBlock heading) continue;
            bool closed = Close(heading.Span.Start);
            while (headings.Count > 0 && headings[^1].Level >= heading.Level) headings.RemoveAt(headings.Count - 1);
            var title = heading.Inline is null ? "" : InlineText(heading.Inline);
            headings.Add((heading.Level, title.Trim()));
            if (closed)
            {
                sectionStart = heading.Span.Start;
                sectionLine = heading.Line;
            }
        }
        Close(text.Length);
        return new ReadDocument("Markdown", sections);
    }

    private static string InlineText(Markdig.Syntax.Inlines.ContainerInline inline)
    {
        var sb = new StringBuilder();
        foreach (var child in inline.Descendants())
        {
            if (child is Markdig.Syntax.Inlines.LiteralInline lit) sb.Append(lit.Content.ToString());
            else if (child is Markdig.Syntax.Inlines.CodeInline code) sb.Append(code.Content);
        }
        return sb.ToString();
    }

    [GeneratedRegex(@"<(script|style)\b[^>]*>.*?</\1\s*>|<!--.*?-->|<[^>]*>", RegexOptions.Singleline | RegexOptions.IgnoreCase)]
    private static partial Regex HtmlMarkup();

    [GeneratedRegex(@"<h([1-6])\b[^>]*>(.*?)</h\1\s*>", RegexOptions.Singleline | RegexOptions.IgnoreCase)]
    private static partial Regex HtmlHeading();

    /// <summary>Text only: markup is replaced by the line breaks it contained, so line numbers still match the source.</summary>
    public static ReadDocument ReadHtml(string html)
    {
        var sections = new List<DocumentSection>();
        var headings = new List<(int Level, string Text)>();
        int start = 0;
        string? currentHeading = null;

        void Add(int from, int to)
        {
            if (to <= from) return;
            var text = StripMarkup(html[from..to]);
            if (!string.IsNullOrWhiteSpace(text))
                sections.Add(new DocumentSection(text, 1 + CountLines(html, from), null, currentHeading));
        }

        foreach (Match m in HtmlHeading().Matches(html))
        {
            Add(start, m.Index);
            int level = m.Groups[1].Value[0] - '0';
            while (headings.Count > 0 && headings[^1].Level >= level) headings.RemoveAt(headings.Count - 1);
            headings.Add((level, StripMarkup(m.Groups[2].Value).Trim()));
            currentHeading = string.Join(" > ", headings.Select(h => h.Text));
            start = m.Index;
        }
        Add(start, html.Length);
        return new ReadDocument("Html", sections);
    }

    private static string StripMarkup(string html)
    {
        var text = HtmlMarkup().Replace(html, m => new string('\n', m.Value.Count(c => c == '\n')) + " ");
        return WebUtility.HtmlDecode(text);
    }

    private static int CountLines(string text, int end)
    {
        int n = 0;
        for (int i = 0; i < end; i++) if (text[i] == '\n') n++;
        return n;
    }

    public static ReadDocument ReadPdf(byte[] content)
    {
        using var pdf = PdfDocument.Open(content);
        var sections = new List<DocumentSection>();
        foreach (var page in pdf.GetPages())
        {
            var text = ContentOrderTextExtractor.GetText(page);
            if (!string.IsNullOrWhiteSpace(text))
                sections.Add(new DocumentSection(text.Replace("\r\n", "\n"), null, page.Number, null));
        }
        return new ReadDocument("Pdf", sections);
    }

    public static ReadDocument ReadDocx(byte[] content)
    {
        using var stream = new MemoryStream(content);
        using var doc = WordprocessingDocument.Open(stream, false);
        var body = doc.MainDocumentPart?.Document?.Body
            ?? throw new InvalidDataException("the document has no body");
        var sections = new List<DocumentSection>();
        var headings = new List<(int Level, string Text)>();
        var current = new StringBuilder();
        string? heading = null;

        void Close()
        {
            if (current.Length > 0 && !string.IsNullOrWhiteSpace(current.ToString()))
                sections.Add(new DocumentSection(current.ToString(), null, null, heading));
            current.Clear();
        }

        foreach (var paragraph in body.Descendants<Paragraph>())
        {
            var text = paragraph.InnerText;
            var style = paragraph.ParagraphProperties?.ParagraphStyleId?.Val?.Value;
            if (style is not null && style.StartsWith("Heading", StringComparison.OrdinalIgnoreCase)
                && int.TryParse(style.AsSpan(7), out var level))
            {
                Close();
                while (headings.Count > 0 && headings[^1].Level >= level) headings.RemoveAt(headings.Count - 1);
                headings.Add((level, text.Trim()));
                heading = string.Join(" > ", headings.Select(h => h.Text));
            }
            current.Append(text).Append('\n');
        }
        Close();
        return new ReadDocument("Docx", sections);
    }

    public static ReadDocument ReadJson(string text)
    {
        using var json = JsonDocument.Parse(text, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        var sections = new List<DocumentSection>();
        IEnumerable<JsonElement> items = json.RootElement.ValueKind == JsonValueKind.Array
            ? json.RootElement.EnumerateArray()
            : [json.RootElement];
        int index = 0;
        foreach (var item in items)
        {
            index++;
            var fields = item.ValueKind == JsonValueKind.Object
                ? item.EnumerateObject().Select(p => new KeyValuePair<string, string?>(p.Name, JsonScalar(p.Value))).ToList()
                : [new KeyValuePair<string, string?>("Value", JsonScalar(item))];
            sections.Add(RecordRenderer.ToSection(new KnowledgeRecord(fields), index, null));
        }
        return new ReadDocument("Json", sections);
    }

    private static string? JsonScalar(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => value.GetString(),
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        _ => value.GetRawText(),
    };

    public static ReadDocument ReadCsv(string text, char separator)
    {
        var rows = CsvParser.Parse(text, separator);
        if (rows.Count == 0) return new ReadDocument("Csv", []);
        var header = rows[0].Fields;
        var sections = new List<DocumentSection>();
        for (int r = 1; r < rows.Count; r++)
        {
            var row = rows[r];
            if (row.Fields.All(string.IsNullOrWhiteSpace)) continue;
            var fields = new List<KeyValuePair<string, string?>>();
            for (int c = 0; c < header.Count; c++)
                fields.Add(new(header[c], c < row.Fields.Count ? row.Fields[c] : null));
            sections.Add(RecordRenderer.ToSection(new KnowledgeRecord(fields), r, row.Line));
        }
        return new ReadDocument("Csv", sections);
    }
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
