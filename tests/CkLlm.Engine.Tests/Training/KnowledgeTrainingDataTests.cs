using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Knowledge.Storage;
using CkLlm.Engine.Training;
using Xunit.Abstractions;

namespace CkLlm.Engine.Tests.Training;

/// <summary>A knowledge base read back as training documents: its sources in order, chunk overlap removed, read-only.</summary>
[Collection("Training")]
public class KnowledgeTrainingDataTests(TrainingFixture fixture, ITestOutputHelper output)
{
    private const string Markdown = """
        # Varnholm

        The lighthouse of Varnholm was built in 1743 by a clockmaker named Edda Quill.
        Its lamp burns blue oil pressed from marsh berries.

        ## The baker

        Tobin Marsh bakes a black rye loaf called the storm loaf every Thursday.
        The storm loaf contains caraway, smoked salt and a spoon of lighthouse honey.
        """;

    private string NewKnowledgeBase(int chunkSize, int overlap, out KnowledgeBaseOptions options)
    {
        var dir = fixture.NewPath("kb");
        // The generated tiny model embeds: no MiniLM load, and small chunks give many overlaps to remove.
        options = new KnowledgeBaseOptions { EmbeddingModel = fixture.TinyModel, ChunkSize = chunkSize, ChunkOverlap = overlap };
        return dir;
    }

    private static string Words(string text) => string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));

    [Theory]
    [InlineData(16, 6)]
    [InlineData(16, 0)]
    public void DocumentsComeBackWordForWordWithoutTheChunkOverlap(int chunkSize, int overlap)
    {
        var dir = NewKnowledgeBase(chunkSize, overlap, out var options);
        var markdown = fixture.NewPath("notes.md");
        File.WriteAllText(markdown, Markdown);
        int factChunks;
        using (var kb = KnowledgeBase.Open(dir, options))
        {
            factChunks = kb.AddText(TrainingFixture.Facts, "facts").Chunks;
            kb.AddFile(markdown);
            kb.AddRecords([new KnowledgeRecord([new("Name", "Mira Quill"), new("Role", "keeper's daughter")]),
                           new KnowledgeRecord([new("Name", "Tobin Marsh"), new("Role", "baker")])], "people");
        }
        Assert.True(factChunks > 5, $"only {factChunks} chunks: the test needs several overlapping chunks");

        var documents = KnowledgeDocuments.Read(dir);
        output.WriteLine(string.Join("\n---\n", documents.Select(d => $"{d.Source} ({d.Chunks} chunks):\n{d.Text}")));
        // Ordered by source name (ordinal), as the store lists them.
        Assert.Equal(new[] { "facts", Path.GetFullPath(markdown), "people" }.Order(StringComparer.Ordinal), documents.Select(d => d.Source));
        // Single-spaced text on one line: the reconstruction is exact, not just word-equal.
        Assert.Equal(TrainingFixture.Facts.Trim(), documents.Single(d => d.Source == "facts").Text);
        Assert.Equal(factChunks, documents.Single(d => d.Source == "facts").Chunks);
        Assert.Equal(Words(Markdown), Words(documents.Single(d => d.Source.EndsWith("notes.md", StringComparison.Ordinal)).Text));
        var people = documents.Single(d => d.Source == "people").Text;
        Assert.Equal("Name: Mira Quill\nRole: keeper's daughter\n\nName: Tobin Marsh\nRole: baker", people);
    }

    [Fact]
    public void OverlapIsTheLongestRepeatOnWordBoundaries()
    {
        Assert.Equal("c d".Length, KnowledgeDocuments.OverlapLength("a b c d", "c d e f"));
        Assert.Equal(0, KnowledgeDocuments.OverlapLength("a b cd", "d e"));      // "d" is not a whole word of the first
        Assert.Equal(0, KnowledgeDocuments.OverlapLength("a b c", "cc d"));      // "c" is not a whole word of the second
        Assert.Equal("x y x".Length, KnowledgeDocuments.OverlapLength("w x y x", "x y x z"));
    }

    [Fact]
    public void ReadsWhileAnotherWriterHoldsTheLockAndNeverWrites()
    {
        var dir = NewKnowledgeBase(32, 4, out var options);
        using var kb = KnowledgeBase.Open(dir, options);
        kb.AddText(TrainingFixture.Facts, "facts");
        var database = Path.Combine(dir, KnowledgeBase.DatabaseFileName);
        var modified = File.GetLastWriteTimeUtc(database);
        using (WriterLock.Acquire(dir, TimeSpan.Zero, CancellationToken.None))
        {
            var documents = KnowledgeDocuments.Read(dir);
            Assert.Equal(TrainingFixture.Facts.Trim(), Assert.Single(documents).Text);
        }
        Assert.Equal(modified, File.GetLastWriteTimeUtc(database));
    }

    [Fact]
    public void MissingNotAKnowledgeBaseAndEmptyAreTold()
    {
        Assert.Throws<DirectoryNotFoundException>(() => KnowledgeDocuments.Read(fixture.NewPath("nowhere")));
        var plain = fixture.NewPath("plain");
        Directory.CreateDirectory(plain);
        var notKb = Assert.Throws<FileNotFoundException>(() => KnowledgeDocuments.Read(plain));
        Assert.Contains("not a knowledge base", notKb.Message);
        Assert.False(File.Exists(Path.Combine(plain, KnowledgeBase.DatabaseFileName)), "reading must not create a database");

        var empty = NewKnowledgeBase(32, 4, out var options);
        KnowledgeBase.Open(empty, options).Dispose();
        Assert.Empty(KnowledgeDocuments.Read(empty));

        var garbage = fixture.NewPath("garbage");
        Directory.CreateDirectory(garbage);
        File.WriteAllBytes(Path.Combine(garbage, KnowledgeBase.DatabaseFileName), new byte[8192]);
        Assert.ThrowsAny<KnowledgeBaseException>(() => KnowledgeDocuments.Read(garbage));
    }
}
