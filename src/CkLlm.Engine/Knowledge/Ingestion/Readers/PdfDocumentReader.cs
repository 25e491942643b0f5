using UglyToad.PdfPig;
using UglyToad.PdfPig.DocumentLayoutAnalysis.TextExtractor;

namespace CkLlm.Engine.Knowledge.Ingestion.Readers;

/// <summary>Pdf documents.</summary>
public sealed class PdfDocumentReader() : DocumentReaderBase("Pdf", false, ".pdf")
{
    public override bool Recognizes(ReadOnlySpan<byte> head) => head.StartsWith("%PDF-"u8);

    public override IEnumerable<DocumentSection> Read(DocumentFile file, CancellationToken cancellationToken) => ReadPdf(file.ReadAllBytes()).Sections;

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
