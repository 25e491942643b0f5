using System.Text;
using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Knowledge.Ingestion;
using DocumentFormat.OpenXml;
using DocumentFormat.OpenXml.Packaging;
using DocumentFormat.OpenXml.Wordprocessing;
using UglyToad.PdfPig.Writer;
using UglyToad.PdfPig.Fonts.Standard14Fonts;

namespace CkLlm.Engine.Tests.Knowledge;

public class DocumentReaderTests
{
    [Fact]
    public void MarkdownSectionsKeepHeadingPathAndStartLine()
    {
        var md = "# Top\n\nintro\n\n## Child\n\nchild text\n\n### Grandchild\n\ndeep text\n\n## Sibling\n\nsibling text\n";
        var doc = DocumentReader.ReadMarkdown(md);
        Assert.Equal(["Top", "Top > Child", "Top > Child > Grandchild", "Top > Sibling"], doc.Sections.Select(s => s.Heading));
        Assert.Equal([1, 5, 9, 13], doc.Sections.Select(s => s.StartLine ?? 0));
        Assert.StartsWith("## Sibling", doc.Sections[3].Text);
    }

    [Fact]
    public void MarkdownHeadingWithoutBodyStaysInFrontOfItsFirstChild()
    {
        var doc = DocumentReader.ReadMarkdown("# Manual\n\n## Install\n\nrun setup\n");
        var section = Assert.Single(doc.Sections);
        Assert.Equal("Manual > Install", section.Heading);
        Assert.StartsWith("# Manual", section.Text);
        Assert.Equal(1, section.StartLine);
    }

    [Fact]
    public void HtmlIsTextOnlyAndKeepsSourceLineNumbers()
    {
        var html = "<html><head><style>p { color: red }</style>\n<script>var secret = 1;</script></head>\n<body>\n<h1>Guide</h1>\n<p>First &amp; foremost</p>\n<h2>Part</h2>\n<p>part\ntext</p>\n</body></html>";
        var doc = DocumentReader.ReadHtml(html);
        var all = string.Join("\n", doc.Sections.Select(s => s.Text));
        Assert.DoesNotContain("<", all);
        Assert.DoesNotContain("secret", all);
        Assert.DoesNotContain("color", all);
        Assert.Contains("First & foremost", all);
        var part = doc.Sections.Single(s => s.Heading == "Guide > Part");
        Assert.Equal(6, part.StartLine);
        // Line 7 of the source holds "part": the section text keeps the line structure.
        Assert.Equal("part", part.Text.Split('\n')[1].Trim());
    }

    [Fact]
    public void PdfSectionsCarryPageNumbers()
    {
        var builder = new PdfDocumentBuilder();
        var font = builder.AddStandard14Font(Standard14Font.Helvetica);
        builder.AddPage(UglyToad.PdfPig.Content.PageSize.A4).AddText("Apples grow on trees", 12, new UglyToad.PdfPig.Core.PdfPoint(50, 700), font);
        builder.AddPage(UglyToad.PdfPig.Content.PageSize.A4).AddText("Submarines dive deep", 12, new UglyToad.PdfPig.Core.PdfPoint(50, 700), font);
        var doc = DocumentReader.Read("x.pdf", builder.Build());
        Assert.Equal("Pdf", doc.Format);
        Assert.Equal([1, 2], doc.Sections.Select(s => s.Page ?? 0));
        Assert.Contains("Submarines", doc.Sections[1].Text);
    }

    [Fact]
    public void DocxHeadingStylesBecomeHeadingPath()
    {
        using var stream = new MemoryStream();
        using (var word = WordprocessingDocument.Create(stream, WordprocessingDocumentType.Document))
        {
            var main = word.AddMainDocumentPart();
            main.Document = new Document(new Body(
                Para("Report", "Heading1"), Para("summary text", null),
                Para("Costs", "Heading2"), Para("costs rose by ten percent", null)));
        }
        var doc = DocumentReader.Read("r.docx", stream.ToArray());
        Assert.Equal("Docx", doc.Format);
        Assert.Equal(["Report", "Report > Costs"], doc.Sections.Select(s => s.Heading));
        Assert.Contains("ten percent", doc.Sections[1].Text);
    }

    private static Paragraph Para(string text, string? style)
    {
        var p = new Paragraph(new Run(new Text(text)));
        if (style is not null) p.ParagraphProperties = new ParagraphProperties(new ParagraphStyleId { Val = style });
        return p;
    }

    [Fact]
    public void CsvRowsBecomeRecordsWithQuotedFieldsAndLines()
    {
        var csv = "Name,Note\nAda,\"likes, commas\"\nBob,\"two\nlines\"\nCy,plain\n";
        var doc = DocumentReader.Read("p.csv", Encoding.UTF8.GetBytes(csv));
        Assert.Equal(3, doc.Sections.Count);
        Assert.Equal("Name: Ada\nNote: likes, commas", doc.Sections[0].Text);
        Assert.Equal("Name: Bob\nNote: two\nlines", doc.Sections[1].Text);
        Assert.Equal([2, 3, 5], doc.Sections.Select(s => s.StartLine ?? 0));
        Assert.All(doc.Sections, s => Assert.True(s.IsRecord));
    }

    [Fact]
    public void JsonArrayOfObjectsBecomesRecords()
    {
        var doc = DocumentReader.Read("d.json", Encoding.UTF8.GetBytes("""[{"id": 1, "title": "Kettle"}, {"id": 2, "title": "Toaster", "tags": ["a"]}]"""));
        Assert.Equal(2, doc.Sections.Count);
        Assert.Equal("id: 2\ntitle: Toaster\ntags: [\"a\"]", doc.Sections[1].Text);
        Assert.Equal("2", doc.Sections[1].Metadata!["record"]);
    }

    [Fact]
    public void RecordTextFieldsChooseTextAndTheRestBecomesMetadata()
    {
        var record = new KnowledgeRecord([new("Title", "Kettle"), new("Price", "20"), new("Body", "boils water")]) { TextFields = ["Title", "Body"] };
        var section = RecordRenderer.ToSection(record, 1, null);
        Assert.Equal("Title: Kettle\nBody: boils water", section.Text);
        Assert.Equal("20", section.Metadata!["Price"]);
        Assert.False(section.Metadata.ContainsKey("Title"));
    }

    [Theory]
    [InlineData("data.bin")]
    [InlineData("notes.txt")]
    public void BinaryContentIsRefusedWithAClearError(string name)
    {
        var bytes = new byte[] { 0x7f, 0x45, 0x4c, 0x46, 0, 0, 1, 2, 3 };
        var ex = Assert.Throws<UnreadableDocumentException>(() => DocumentReader.Read(name, bytes));
        Assert.Contains("binary", ex.Message);
    }

    [Theory]
    [InlineData("broken.pdf", "%PDF-1.7 this is not really a pdf")]
    [InlineData("broken.docx", "PK not a zip")]
    [InlineData("broken.json", "{ \"a\": ")]
    public void MalformedStructuredFilesAreUnreadable(string name, string content)
    {
        var ex = Assert.Throws<UnreadableDocumentException>(() => DocumentReader.Read(name, Encoding.UTF8.GetBytes(content)));
        Assert.Contains(name, ex.Message);
    }
}
