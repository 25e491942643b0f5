using System.Text;
using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Knowledge.Ingestion;
using CkLlm.Engine.Knowledge.Ingestion.Readers;

namespace CkLlm.Engine.Tests.Knowledge;

/// <summary>Encodings, size limit, bounded text blocks, and the reader registry.</summary>
public class DocumentFileTests
{
    private static string Text(string name, byte[] bytes) =>
        string.Join("", DocumentReader.Read(name, bytes).Sections.Select(s => s.Text));

    [Fact]
    public void Utf16AndUtf8ByteOrderMarksDecide()
    {
        var text = "Grüße aus Köln\nzweite Zeile";
        Assert.Equal(text + "\n", Text("a.txt", [.. Encoding.Unicode.GetPreamble(), .. Encoding.Unicode.GetBytes(text)]));
        Assert.Equal(text + "\n", Text("a.txt", [.. Encoding.BigEndianUnicode.GetPreamble(), .. Encoding.BigEndianUnicode.GetBytes(text)]));
        Assert.Equal(text + "\n", Text("a.txt", [.. Encoding.UTF8.GetPreamble(), .. Encoding.UTF8.GetBytes(text)]));
        Assert.Null(DocumentFile.FromBytes("a.txt", Encoding.UTF8.GetBytes(text)).EncodingWarning);
    }

    [Fact]
    public void InvalidUtf8IsReadAsWindows1252WithAWarningNamingFileAndOffset()
    {
        // "café – 5 €" in Windows-1252: é = E9, en dash = 96, euro = 80; none of them is valid UTF-8 on its own.
        byte[] bytes = [(byte)'c', (byte)'a', (byte)'f', 0xE9, (byte)' ', 0x96, (byte)' ', (byte)'5', (byte)' ', 0x80];
        var file = DocumentFile.FromBytes("legacy.txt", bytes);
        Assert.Contains("'legacy.txt' is not valid UTF-8", file.EncodingWarning);
        Assert.Contains("offset 3", file.EncodingWarning);
        var text = Text("legacy.txt", bytes);
        Assert.Equal("café – 5 €\n", text);
        Assert.DoesNotContain('\uFFFD', text);
    }

    [Fact]
    public void AnInvalidByteFarIntoALargeFileIsFoundAtItsOffset()
    {
        var bytes = Encoding.UTF8.GetBytes(new string('a', 3_000_000) + "\n");
        bytes[2_500_001] = 0xFF;
        var file = DocumentFile.FromBytes("big.txt", bytes);
        Assert.Contains("offset 2500001", file.EncodingWarning);
    }

    [Fact]
    public void BinaryContentIsRefused()
    {
        var error = Assert.Throws<UnreadableDocumentException>(() => DocumentReader.Read("data.txt", [1, 2, 0, 4, 5]));
        Assert.Contains("binary", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AFileOverTheLimitIsNotRead()
    {
        using var dir = new KnowledgeTestDirectory();
        var path = dir.Write("big.txt", new string('x', 5000));
        var error = Assert.Throws<DocumentTooLargeException>(() => DocumentFile.Open(path, maxFileSize: 4096));
        Assert.Equal(path, error.Path);
        Assert.Contains("over the per-file limit of 4,096 bytes", error.Message, StringComparison.Ordinal);
        Assert.Equal(5000, DocumentFile.Open(path, maxFileSize: 0).Length);
    }

    [Fact]
    public void TextIsReadInBoundedBlocksOfWholeLinesWithTheirLineNumbers()
    {
        var lines = Enumerable.Range(1, 2000).Select(i => $"line {i} " + new string('z', i % 50)).ToList();
        lines.Insert(1000, new string('L', 2500)); // one line longer than a block
        var file = DocumentFile.FromBytes("t.txt", Encoding.UTF8.GetBytes(string.Join("\n", lines)));
        var blocks = file.ReadTextBlocks(1000, CancellationToken.None).ToList();
        Assert.All(blocks, b => Assert.True(b.Text.Length <= 1001, $"block of {b.Text.Length} chars"));
        Assert.Equal(string.Join("\n", lines) + "\n", string.Concat(blocks.Select(b => b.Text)));
        foreach (var (text, startLine) in blocks)
        {
            if (text.StartsWith('L')) Assert.Equal(1001, startLine);
            else Assert.StartsWith($"line {(startLine > 1001 ? startLine - 1 : startLine)} ", text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void TheRegistryChoosesByExtensionThenContentThenText()
    {
        var registry = DocumentReaderRegistry.CreateDefault();
        Assert.IsType<MarkdownDocumentReader>(registry.Find("a.MD", []));
        Assert.IsType<PdfDocumentReader>(registry.Find("scan.bin", "%PDF-1.7\n"u8));
        Assert.IsType<TextDocumentReader>(registry.Find("main.rs", "fn main() {}"u8));
        var custom = new UpperCaseReader();
        registry.Register(custom);
        Assert.Same(custom, registry.Find("notes.shout", []));
        Assert.IsType<TextDocumentReader>(DocumentReaderRegistry.Default.Find("notes.shout", []));
    }

    [Fact]
    public void DocumentTextReadsAnyFormatAndRefusesBinary()
    {
        using var dir = new KnowledgeTestDirectory();
        var md = dir.Write("a.md", "# Title\n\nFirst part.\n\n## More\n\nSecond part.\n");
        Assert.Equal("# Title\n\nFirst part.\n\n## More\n\nSecond part.", DocumentText.ReadFile(md));
        var binary = Path.Combine(dir.Path, "model.gguf");
        File.WriteAllBytes(binary, [0x47, 0x47, 0x55, 0x46, 3, 0, 0, 0, 0, 0]);
        Assert.Throws<UnreadableDocumentException>(() => DocumentText.ReadFile(binary));
        var legacy = Path.Combine(dir.Path, "old.txt");
        File.WriteAllBytes(legacy, [(byte)'n', 0xE4, (byte)'h']);
        string? warning = null;
        Assert.Equal("näh", DocumentText.ReadFile(legacy, warning: w => warning = w));
        Assert.Contains(legacy, warning);
    }

    private sealed class UpperCaseReader : IDocumentReader
    {
        public string Format => "Shout";
        public IReadOnlyCollection<string> Extensions { get; } = [".shout"];
        public bool IsText => true;
        public bool Recognizes(ReadOnlySpan<byte> head) => false;
        public IEnumerable<DocumentSection> Read(DocumentFile file, CancellationToken cancellationToken) =>
            [new DocumentSection(file.ReadAllText().ToUpperInvariant(), 1, null, null)];
    }
}
