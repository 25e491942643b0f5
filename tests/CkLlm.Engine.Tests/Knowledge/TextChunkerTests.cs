using CkLlm.Engine.Knowledge.Embedding;
using CkLlm.Engine.Knowledge.Ingestion;

namespace CkLlm.Engine.Tests.Knowledge;

public class TextChunkerTests
{
    private static readonly Lazy<MiniLmEmbedder> Embedder = new(() => (MiniLmEmbedder)CkLlm.Engine.Knowledge.Embedding.EmbedderRegistry.Resolve(MiniLmEmbedder.Name));

    [Fact]
    public void NoChunkExceedsTheSizeInTheEmbeddersOwnTokensAndChunksOverlap()
    {
        var embedder = Embedder.Value;
        var lines = Enumerable.Range(1, 120).Select(i => $"Line {i}: the quick brown fox jumps over the lazy dog, naïvely re-tokenising café émigrés #{i}.");
        var text = string.Join("\n", lines);
        var chunker = new TextChunker(embedder.CountTokens, chunkSize: 64, overlap: 16, hardLimit: embedder.MaxTokens);
        var chunks = chunker.Chunk(new DocumentSection(text, 1, null, null)).ToList();
        Assert.True(chunks.Count > 10);
        foreach (var c in chunks)
        {
            Assert.True(embedder.CountTokens(c.Text) <= 64, $"{embedder.CountTokens(c.Text)} tokens in chunk at line {c.LineStart}");
            Assert.Equal(embedder.CountTokens(c.Text), c.TokenCount);
        }
        for (int i = 1; i < chunks.Count; i++)
        {
            Assert.True(chunks[i].LineStart <= chunks[i - 1].LineEnd, "consecutive chunks overlap");
            Assert.True(chunks[i].LineStart > chunks[i - 1].LineStart, "chunks move forward");
        }
        Assert.Equal(120, chunks[^1].LineEnd);
    }

    [Fact]
    public void LineRangesMatchTheText()
    {
        var embedder = Embedder.Value;
        var text = string.Join("\n", Enumerable.Range(1, 60).Select(i => $"row{i} alpha beta gamma delta"));
        var chunker = new TextChunker(embedder.CountTokens, 40, 0, embedder.MaxTokens);
        var chunks = chunker.Chunk(new DocumentSection(text, 10, null, null)).ToList();
        Assert.True(chunks.Count > 2, "the rows must be split for the ranges to mean anything");
        foreach (var c in chunks)
        {
            var firstRow = int.Parse(c.Text.Split(' ')[0][3..]);
            Assert.Equal(firstRow + 9, c.LineStart);
            Assert.Equal(c.LineStart + c.Text.Count(ch => ch == '\n'), c.LineEnd);
        }
    }

    [Fact]
    public void ChunkSizeIsCappedByTheModelWindow()
    {
        var embedder = Embedder.Value;
        var text = string.Join(" ", Enumerable.Repeat("tokenisation", 2000));
        var chunker = new TextChunker(embedder.CountTokens, chunkSize: 4000, overlap: 0, hardLimit: embedder.MaxTokens);
        var chunks = chunker.Chunk(new DocumentSection(text, 1, null, null)).ToList();
        Assert.True(chunks.Count > 1, "2000 words cannot fit one window");
        Assert.All(chunks, c => Assert.True(embedder.CountTokens(c.Text) <= embedder.MaxTokens));
    }

    [Fact]
    public void BadSizesAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new TextChunker(s => 1, 4, 0, 100));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TextChunker(s => 1, 32, 32, 100));
    }
}
