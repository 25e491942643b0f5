using System.Text;

namespace CkLlm.Engine.Model.Generation;

/// <summary>
/// A SentencePiece-style vocabulary as llama.cpp's "llama" (SPM) tokenizer expects it: specials, 256 byte-fallback
/// tokens, then pieces with scores. Pieces are learned with byte-pair merges over a corpus, so every piece can be
/// reached by merging two shorter pieces, which is how llama.cpp's SPM tokenizer builds tokens.
/// </summary>
public sealed class SentencePieceVocabulary
{
    public const string WordBoundary = "\u2581"; // ▁
    public const int UnknownId = 0, BosId = 1, EosId = 2;

    // llama_token_type: NORMAL=1, UNKNOWN=2, CONTROL=3, USER_DEFINED=4, UNUSED=5, BYTE=6
    public const int TypeNormal = 1, TypeUnknown = 2, TypeControl = 3, TypeByte = 6;

    public List<string> Tokens { get; } = new();
    public List<float> Scores { get; } = new();
    public List<int> TokenTypes { get; } = new();

    public int Count => Tokens.Count;

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

        // Byte-pair merges: the most frequent adjacent pair becomes a piece, until the target size is reached.
        var segmented = words.ToDictionary(w => w.Key, w => SplitCharacters(w.Key), StringComparer.Ordinal);
        var merges = new List<string>();
        while (vocab.Count + merges.Count < targetSize)
        {
            var pairCounts = new Dictionary<(string, string), int>();
            foreach (var (word, parts) in segmented)
                for (int i = 0; i + 1 < parts.Count; i++)
                    pairCounts[(parts[i], parts[i + 1])] = pairCounts.GetValueOrDefault((parts[i], parts[i + 1])) + words[word];
            if (pairCounts.Count == 0) break;
            var best = pairCounts.OrderByDescending(p => p.Value).ThenBy(p => p.Key.Item1 + p.Key.Item2, StringComparer.Ordinal).First().Key;
            var merged = best.Item1 + best.Item2;
            merges.Add(merged);
            foreach (var parts in segmented.Values)
                for (int i = 0; i + 1 < parts.Count; i++)
                    if (parts[i] == best.Item1 && parts[i + 1] == best.Item2) { parts[i] = merged; parts.RemoveAt(i + 1); }
        }

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
