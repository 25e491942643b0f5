using System.Collections.Concurrent;

namespace CkLlm.Engine.Knowledge.Ingestion;

/// <summary>
/// Splits sections into windows of at most <c>chunkSize</c> tokens of the embedder's own tokenizer, with overlap.
/// Works on whitespace-separated words (their token counts are cached, and BERT-style tokenizers never merge
/// across whitespace, so the sum is exact) and prefers to end a chunk at a line break. Linear in the section's
/// length (line numbers are counted forward from the previous chunk, never from the start), and thread-safe: one
/// chunker serves every ingestion running on the knowledge base at once.
/// </summary>
internal sealed class TextChunker
{
    private readonly Func<string, int> _countTokens;
    private readonly int _chunkSize;
    private readonly int _overlap;
    private readonly int _hardLimit;
    private const int MaxCachedWords = 200_000;
    private readonly ConcurrentDictionary<string, int> _wordTokens = new(StringComparer.Ordinal);

    public TextChunker(Func<string, int> countTokens, int chunkSize, int overlap, int hardLimit)
    {
        if (chunkSize < 8) throw new ArgumentOutOfRangeException(nameof(chunkSize), chunkSize, "ChunkSize must be at least 8 tokens.");
        if (overlap < 0 || overlap >= chunkSize)
            throw new ArgumentOutOfRangeException(nameof(overlap), overlap, "ChunkOverlap must be between 0 and ChunkSize - 1.");
        _countTokens = countTokens;
        _hardLimit = hardLimit;
        _chunkSize = Math.Min(chunkSize, hardLimit);
        _overlap = Math.Min(overlap, _chunkSize / 2);
    }

    /// <remarks>Cancellation is checked for every chunk (and every 4,096 words while counting tokens), so a huge
    /// section stops promptly.</remarks>
    public IEnumerable<DocumentChunk> Chunk(DocumentSection section, CancellationToken cancellationToken = default)
    {
        var text = section.Text;
        var words = SplitWords(text);
        if (words.Count == 0) yield break;

        var tokens = new int[words.Count];
        for (int i = 0; i < words.Count; i++)
        {
            if ((i & 4095) == 0) cancellationToken.ThrowIfCancellationRequested();
            tokens[i] = WordTokens(text.Substring(words[i].Start, words[i].Length));
        }
        // Chunk starts only move forward: line numbers are carried from the previous chunk's start.
        int countedTo = 0, linesBefore = 0;

        // Records stay whole when they fit the model window.
        int limit = section.IsRecord ? _hardLimit : _chunkSize;
        int first = 0;
        while (first < words.Count)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int sum = 0, last = first;
            while (last < words.Count && (sum + tokens[last] <= limit || last == first))
            {
                sum += tokens[last];
                last++;
            }
            // last is exclusive. Prefer ending after a word followed by a line break in the final third.
            if (last < words.Count)
            {
                int minEnd = first + Math.Max(1, (last - first) * 2 / 3);
                for (int e = last; e > minEnd; e--)
                {
                    if (NewlineBetween(text, words[e - 1], words[e])) { last = e; break; }
                }
            }

            int startChar = words[first].Start;
            int endChar = words[last - 1].Start + words[last - 1].Length;
            var chunkText = text[startChar..endChar];
            int chunkTokens = 0;
            for (int i = first; i < last; i++) chunkTokens += tokens[i];

            linesBefore += CountNewlines(text, countedTo, startChar);
            countedTo = startChar;
            int? lineStart = section.StartLine is { } l ? l + linesBefore : null;
            int? lineEnd = lineStart is { } ls ? ls + CountNewlines(text, startChar, endChar) : null;
            yield return new DocumentChunk(chunkText, lineStart, lineEnd, section.Page, section.Heading, section.Metadata, chunkTokens);

            if (last >= words.Count) break;
            // Step back by the overlap, but always move forward.
            int next = last, back = 0;
            while (next > first + 1 && back + tokens[next - 1] <= _overlap)
            {
                back += tokens[next - 1];
                next--;
            }
            first = next;
        }
    }

    private int WordTokens(string word)
    {
        if (_wordTokens.TryGetValue(word, out var n)) return n;
        n = Math.Max(1, _countTokens(word));
        // The bound is approximate under concurrency (a few extra entries at most); the value is the same either way.
        if (_wordTokens.Count < MaxCachedWords) _wordTokens.TryAdd(word, n);
        return n;
    }

    private static List<(int Start, int Length)> SplitWords(string text)
    {
        var words = new List<(int, int)>();
        int i = 0;
        while (i < text.Length)
        {
            while (i < text.Length && char.IsWhiteSpace(text[i])) i++;
            int start = i;
            // Very long "words" (base64, minified code) are cut so one word cannot exceed the window.
            while (i < text.Length && !char.IsWhiteSpace(text[i]) && i - start < 64) i++;
            if (i > start) words.Add((start, i - start));
        }
        return words;
    }

    private static bool NewlineBetween(string text, (int Start, int Length) a, (int Start, int Length) b)
    {
        for (int i = a.Start + a.Length; i < b.Start; i++) if (text[i] == '\n') return true;
        return false;
    }

    private static int CountNewlines(string text, int from, int to)
    {
        int n = 0;
        for (int i = from; i < to; i++) if (text[i] == '\n') n++;
        return n;
    }
}
