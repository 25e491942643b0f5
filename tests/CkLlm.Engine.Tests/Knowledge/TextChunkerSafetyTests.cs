using CkLlm.Engine.Knowledge.Ingestion;

namespace CkLlm.Engine.Tests.Knowledge;

/// <summary>Line numbers counted forward, cancellation inside a section, and one chunker shared by many threads.</summary>
public class TextChunkerSafetyTests
{
    // One token per 3 characters: a stand-in tokenizer that is cheap and deterministic.
    private static int CountTokens(string word) => (word.Length + 2) / 3;

    private static string Lines(int count, string prefix = "line") =>
        string.Join("\n", Enumerable.Range(1, count).Select(i => $"{prefix} {i} has some words {i % 7} and a tail {i * 31 % 97}"));

    [Fact]
    public void LineNumbersMatchTheSourceInALongSection()
    {
        var text = Lines(5000) + "\n\n\n" + Lines(300, "after");
        var chunker = new TextChunker(CountTokens, chunkSize: 40, overlap: 8, hardLimit: 512);
        var chunks = chunker.Chunk(new DocumentSection(text, 10, null, null)).ToList();
        Assert.True(chunks.Count > 500);
        int searchFrom = 0;
        foreach (var chunk in chunks)
        {
            int at = text.IndexOf(chunk.Text, Math.Max(0, searchFrom - 4000), StringComparison.Ordinal);
            Assert.True(at >= 0);
            searchFrom = at;
            int expectedStart = 10 + text.AsSpan(0, at).Count('\n');
            Assert.Equal(expectedStart, chunk.LineStart);
            Assert.Equal(expectedStart + chunk.Text.AsSpan().Count('\n'), chunk.LineEnd);
        }
    }

    [Fact]
    public void CancellationStopsInsideASection()
    {
        var chunker = new TextChunker(CountTokens, chunkSize: 40, overlap: 8, hardLimit: 512);
        using var cancel = new CancellationTokenSource();
        var produced = 0;
        Assert.Throws<OperationCanceledException>(() =>
        {
            foreach (var _ in chunker.Chunk(new DocumentSection(Lines(20000), 1, null, null), cancel.Token))
            {
                if (++produced == 3) cancel.Cancel();
            }
        });
        Assert.Equal(3, produced);
    }

    [Fact]
    public void OneChunkerServesManyThreadsWithTheSameResult()
    {
        var texts = Enumerable.Range(0, 16).Select(t => string.Join(" ", Enumerable.Range(0, 6000).Select(w => $"w{t}x{w}"))).ToArray();
        var expected = texts.Select(t => new TextChunker(CountTokens, 32, 4, 512).Chunk(new DocumentSection(t, 1, null, null))
            .Select(c => (c.Text, c.TokenCount)).ToList()).ToArray();
        var shared = new TextChunker(CountTokens, 32, 4, 512);
        var actual = new List<(string, int)>[texts.Length];
        Parallel.For(0, texts.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
            actual[i] = shared.Chunk(new DocumentSection(texts[i], 1, null, null)).Select(c => (c.Text, c.TokenCount)).ToList());
        for (int i = 0; i < texts.Length; i++) Assert.Equal(expected[i], actual[i]);
    }
}
