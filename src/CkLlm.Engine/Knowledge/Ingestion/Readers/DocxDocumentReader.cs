using System.Text;
using DocumentFormat.OpenXml.Packaging;
using DocumentFormat.OpenXml.Wordprocessing;

namespace CkLlm.Engine.Knowledge.Ingestion.Readers;

/// <summary>Docx documents.</summary>
public sealed class DocxDocumentReader() : DocumentReaderBase("Docx", false, ".docx")
{
    public override IEnumerable<DocumentSection> Read(DocumentFile file, CancellationToken cancellationToken) => ReadDocx(file.ReadAllBytes()).Sections;

    internal static ReadDocument ReadDocx(byte[] content)
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

}
