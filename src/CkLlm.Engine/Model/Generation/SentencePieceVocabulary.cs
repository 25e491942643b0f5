using System.Text;
using CkLlm.Engine.Model.Gguf;

namespace CkLlm.Engine.Model.Generation;

/// <summary>
/// A SentencePiece-style vocabulary as llama.cpp's "llama" (SPM) tokenizer expects it: specials, 256 byte-fallback
/// tokens, then pieces with scores. Pieces are learned with byte-pair merges over a corpus, so every piece can be
/// reached by merging two shorter pieces, which is how llama.cpp's SPM tokenizer builds tokens.
/// </summary>
public sealed class SentencePieceVocabulary : IGeneratedVocabulary
{
    public const string WordBoundary = "\u2581"; // ▁
    public const int UnknownId = 0, BosId = 1, EosId = 2;

    // llama_token_type: NORMAL=1, UNKNOWN=2, CONTROL=3, USER_DEFINED=4, UNUSED=5, BYTE=6
    public const int TypeNormal = 1, TypeUnknown = 2, TypeControl = 3, TypeByte = 6;

    public List<string> Tokens { get; } = new();
    public List<float> Scores { get; } = new();
    public List<int> TokenTypes { get; } = new();

    public int Count => Tokens.Count;

    IReadOnlyList<string> IGeneratedVocabulary.Tokens => Tokens;

    public void AddTo(GgufWriter writer)
    {
        writer.Add("tokenizer.ggml.model", "llama")
            .Add("tokenizer.ggml.tokens", Tokens)
            .Add("tokenizer.ggml.scores", Scores)
            .Add("tokenizer.ggml.token_type", TokenTypes);
    }

    /// <summary>The default training text when no corpus is given.</summary>
    public const string DefaultCorpus =
        "The quick brown fox jumps over the lazy dog. A knowledge base holds documents, and a model answers " +
        "questions from them with citations. PowerShell pipes objects from one command to the next. " +
        "Once upon a time there was a little model that learned to read and write. It read every page of the " +
        "manual and remembered where each answer came from. The answer is in the source, and the source is cited.";

    public static SentencePieceVocabulary Build(string corpus, int targetSize) => Build(corpus, targetSize, []);

    /// <summary>Builds the vocabulary; <paramref name="controlTokens"/> follow the byte tokens as CONTROL tokens.</summary>
    public static SentencePieceVocabulary Build(string corpus, int targetSize, IReadOnlyList<string> controlTokens)
    {
        var vocab = new SentencePieceVocabulary();
        vocab.Append("<unk>", 0, TypeUnknown);
        vocab.Append("<s>", 0, TypeControl);
        vocab.Append("</s>", 0, TypeControl);
        for (int b = 0; b < 256; b++) vocab.Append($"<0x{b:X2}>", 0, TypeByte);
        foreach (var control in controlTokens)
        {
            if (string.IsNullOrEmpty(control) || vocab.Tokens.Contains(control))
                throw new ArgumentException($"Control token '{control}' is empty or already in the vocabulary.", nameof(controlTokens));
            vocab.Append(control, 0, TypeControl);
        }
        if (vocab.Count >= targetSize) return vocab;

        var seen = new HashSet<string>(vocab.Tokens);
        float score = 0;
        void AddPiece(string piece)
        {
            if (vocab.Count < targetSize && seen.Add(piece)) vocab.Append(piece, score--, TypeNormal);
        }

        // Words as SentencePiece sees them: spaces become ▁ glued to the following word.
        var words = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var word in (corpus.Length == 0 ? DefaultCorpus : corpus)
                     .Split([' ', '\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries))
        {
            var key = WordBoundary + word;
            words[key] = words.GetValueOrDefault(key) + 1;
        }

        var merges = LearnMerges(words, targetSize - vocab.Count);

        // Single characters first (so merges are reachable), then merges in the order they were learned.
        foreach (var c in words.Keys.SelectMany(SplitCharacters).Distinct().OrderBy(c => c, StringComparer.Ordinal)) AddPiece(c);
        foreach (var m in merges) AddPiece(m);

        // Filler for large presets: every ▁-prefixed and bare 1-3 letter piece, each reachable by merges.
        const string letters = "abcdefghijklmnopqrstuvwxyz";
        foreach (var prefix in new[] { WordBoundary, "" })
        {
            foreach (var a in letters) AddPiece(prefix + a);
            foreach (var a in letters) foreach (var b in letters) AddPiece(prefix + a + b);
            foreach (var a in letters) foreach (var b in letters) foreach (var c in letters) AddPiece(prefix + a + b + c);
        }
        // Still short (a very large target): numbered pieces keep the size exact.
        for (int n = 0; vocab.Count < targetSize; n++) AddPiece($"{WordBoundary}{n}");
        return vocab;
    }

    /// <summary>
    /// Byte-pair merges: repeatedly the most frequent adjacent pair (ties: the smaller merged string, ordinal) becomes a
    /// piece. Pair counts are kept incrementally with an ordered set and a pair-to-words index, so each merge only
    /// revisits the words containing that pair (a full rescan per merge was minutes for a megabyte corpus).
    /// </summary>
    private static List<string> LearnMerges(Dictionary<string, int> words, int maxMerges)
    {
        var merges = new List<string>();
        if (maxMerges <= 0) return merges;
        var symbols = new List<string>();
        var symbolIds = new Dictionary<string, int>(StringComparer.Ordinal);
        int Id(string symbol)
        {
            if (!symbolIds.TryGetValue(symbol, out var id)) { id = symbols.Count; symbols.Add(symbol); symbolIds[symbol] = id; }
            return id;
        }

        var wordList = words.OrderBy(w => w.Key, StringComparer.Ordinal).ToArray();
        var segments = wordList.Select(w => SplitCharacters(w.Key).Select(Id).ToList()).ToArray();
        var counts = new Dictionary<(int, int), long>();
        var merged = new Dictionary<(int, int), string>();
        var occurrences = new Dictionary<(int, int), HashSet<int>>();
        var queue = new SortedSet<(int, int)>(Comparer<(int, int)>.Create((x, y) =>
        {
            int c = counts[y].CompareTo(counts[x]);
            if (c != 0) return c;
            c = string.CompareOrdinal(merged[x], merged[y]);
            return c != 0 ? c : string.CompareOrdinal(symbols[x.Item1], symbols[y.Item1]);
        }));

        void Count(int word, int sign)
        {
            var parts = segments[word];
            for (int i = 0; i + 1 < parts.Count; i++)
            {
                var pair = (parts[i], parts[i + 1]);
                if (counts.TryGetValue(pair, out var old)) queue.Remove(pair);
                else merged[pair] = symbols[pair.Item1] + symbols[pair.Item2];
                long now = old + sign * (long)wordList[word].Value;
                if (now > 0) { counts[pair] = now; queue.Add(pair); }
                else counts.Remove(pair);
                if (sign > 0)
                {
                    if (!occurrences.TryGetValue(pair, out var set)) occurrences[pair] = set = new HashSet<int>();
                    set.Add(word);
                }
            }
        }

        for (int w = 0; w < wordList.Length; w++) Count(w, +1);
        while (merges.Count < maxMerges && queue.Count > 0)
        {
            var best = queue.Min;
            var piece = merged[best];
            int pieceId = Id(piece);
            merges.Add(piece);
            foreach (var word in occurrences[best].ToArray())
            {
                var parts = segments[word];
                Count(word, -1);
                for (int i = 0; i + 1 < parts.Count; i++)
                    if (parts[i] == best.Item1 && parts[i + 1] == best.Item2) { parts[i] = pieceId; parts.RemoveAt(i + 1); }
                Count(word, +1);
            }
            occurrences.Remove(best);
        }
        return merges;
    }

    private void Append(string token, float score, int type)
    {
        Tokens.Add(token);
        Scores.Add(score);
        TokenTypes.Add(type);
    }

    private static List<string> SplitCharacters(string word)
    {
        var parts = new List<string>();
        var e = StringInfo(word);
        while (e.MoveNext()) parts.Add((string)e.Current);
        return parts;
    }

    private static System.Globalization.TextElementEnumerator StringInfo(string s) =>
        System.Globalization.StringInfo.GetTextElementEnumerator(s);
}
