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

namespace CkLlm.Engine.Knowledge.Ingestion.Readers;


/// <summary>Pdf documents.</summary>
public sealed class PdfDocumentReader : IDocumentReader
{
    public string Format => "Pdf";
    public IReadOnlyCollection<string> Extensions { get; } = [".pdf"];
    public bool IsText => false;
    public bool Recognizes(ReadOnlySpan<byte> head) => head.StartsWith("%PDF-"u8);

    public IEnumerable<DocumentSection> Read(DocumentFile file, CancellationToken cancellationToken) => ReadPdf(file.ReadAllBytes()).Sections;

    internal static ReadDocument ReadPdf(byte[] content)
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

}
