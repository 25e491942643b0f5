using System.IO.Compression;
using System.Text;
using CkLlm.Engine.Model.Gguf;

namespace CkLlm.Engine.Model.Generation;

/// <summary>
/// A byte-level BPE vocabulary as llama.cpp's "gpt2" tokenizer expects it (the layout of Llama 3, Qwen2 and GPT
/// models): tokens spelled in GPT-2's byte-to-unicode alphabet, merges in rank order, then control tokens. The
/// mergeable ranks come from OpenAI's cl100k_base table shipped in the Microsoft.ML.Tokenizers.Data.Cl100kBase
/// package; tiktoken tables list no merges, so each token's merge is recovered by running BPE over its bytes with the
/// lower-ranked tokens only (the last step yields the two halves it is merged from).
/// </summary>
public sealed class ByteLevelBpeVocabulary : IGeneratedVocabulary
{
    /// <summary>The number of mergeable tokens in cl100k_base.</summary>
    public const int Cl100kMergeableCount = 100256;

    private static readonly Lazy<(string[] Tokens, string[] Merges)> Cl100k = new(LoadCl100k);

    public List<string> Tokens { get; } = new();
    public List<int> TokenTypes { get; } = new();
    public IReadOnlyList<string> Merges { get; private init; } = [];

    /// <summary>llama.cpp's pre-tokenizer name (tokenizer.ggml.pre), which selects the regex that splits words.</summary>
    public string PreTokenizer { get; private init; } = "llama-bpe";

    public int Count => Tokens.Count;

    IReadOnlyList<string> IGeneratedVocabulary.Tokens => Tokens;

    /// <summary>
    /// The first <paramref name="mergeableCount"/> cl100k tokens (a prefix of a BPE rank table is itself complete)
    /// followed by <paramref name="controlTokens"/> as CONTROL tokens.
    /// </summary>
    public static ByteLevelBpeVocabulary FromCl100k(IReadOnlyList<string> controlTokens, string preTokenizer, int mergeableCount = Cl100kMergeableCount)
    {
        if (mergeableCount is < 256 or > Cl100kMergeableCount)
            throw new ArgumentOutOfRangeException(nameof(mergeableCount), mergeableCount, $"Between 256 (the single bytes) and {Cl100kMergeableCount}.");
        var (tokens, merges) = Cl100k.Value;
        // Merge i builds token i + 256 exactly when every multi-byte token has a merge, which LoadCl100k ensures.
        var vocab = new ByteLevelBpeVocabulary { Merges = merges[..(mergeableCount - 256)], PreTokenizer = preTokenizer };
        vocab.Tokens.AddRange(tokens[..mergeableCount]);
        vocab.TokenTypes.AddRange(Enumerable.Repeat(SentencePieceVocabulary.TypeNormal, mergeableCount));
        var seen = new HashSet<string>(vocab.Tokens, StringComparer.Ordinal);
        foreach (var control in controlTokens)
        {
            if (string.IsNullOrEmpty(control) || !seen.Add(control))
                throw new ArgumentException($"Control token '{control}' is empty or already in the vocabulary.", nameof(controlTokens));
            vocab.Tokens.Add(control);
            vocab.TokenTypes.Add(SentencePieceVocabulary.TypeControl);
        }
        return vocab;
    }

    public void AddTo(GgufWriter writer)
    {
        writer.Add("tokenizer.ggml.model", "gpt2")
            .Add("tokenizer.ggml.pre", PreTokenizer)
            .Add("tokenizer.ggml.tokens", Tokens)
            .Add("tokenizer.ggml.token_type", TokenTypes)
            .Add("tokenizer.ggml.merges", Merges);
    }

    /// <summary>GPT-2's reversible byte-to-character map: printable Latin-1 bytes stand for themselves, the rest are shifted past 255.</summary>
    internal static char[] ByteToUnicode()
    {
        var map = new char[256];
        int shifted = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)(256 + shifted++);
        }
        return map;
    }

    private static (string[] Tokens, string[] Merges) LoadCl100k()
    {
        var ranked = ReadTiktoken();
        // Byte strings as Latin-1 strings: one char per byte, cheap to concatenate and hash.
        var rankOf = new Dictionary<string, int>(ranked.Length, StringComparer.Ordinal);
        for (int r = 0; r < ranked.Length; r++) rankOf[ranked[r]] = r;
        for (int r = 0; r < 256; r++)
            if (ranked[r].Length != 1) throw new InvalidDataException("cl100k_base does not start with the 256 single bytes.");

        var alphabet = ByteToUnicode();
        string Spell(string bytes) => string.Create(bytes.Length, bytes, (span, s) => { for (int i = 0; i < s.Length; i++) span[i] = alphabet[s[i]]; });

        var tokens = ranked.Select(Spell).ToArray();
        var merges = new string[ranked.Length - 256];
        var parts = new List<string>();
        for (int r = 256; r < ranked.Length; r++)
        {
            parts.Clear();
            foreach (var c in ranked[r]) parts.Add(c.ToString());
            while (parts.Count > 2)
            {
                int best = -1, bestRank = r;
                for (int i = 0; i + 1 < parts.Count; i++)
                    if (rankOf.TryGetValue(parts[i] + parts[i + 1], out var pr) && pr < bestRank) { bestRank = pr; best = i; }
                if (best < 0) break;
                parts[best] += parts[best + 1];
                parts.RemoveAt(best + 1);
            }
            if (parts.Count != 2) throw new InvalidDataException($"cl100k_base token {r} cannot be built by one merge of lower-ranked tokens.");
            merges[r - 256] = Spell(parts[0]) + " " + Spell(parts[1]);
        }
        return (tokens, merges);
    }

    /// <summary>
    /// cl100k_base as the package stores it (a "Capacity: N" header, then one base64 token per line in rank order; the
    /// tiktoken form "base64 rank" is read too), as Latin-1 byte strings indexed by rank.
    /// </summary>
    private static string[] ReadTiktoken()
    {
        // The data package exposes no public type: load it by name into the engine's own load context.
        var context = System.Runtime.Loader.AssemblyLoadContext.GetLoadContext(typeof(ByteLevelBpeVocabulary).Assembly)!;
        var assembly = context.LoadFromAssemblyName(new System.Reflection.AssemblyName("Microsoft.ML.Tokenizers.Data.Cl100kBase"));
        using var resource = assembly.GetManifestResourceStream("cl100k_base.tiktoken.deflate")
                             ?? throw new InvalidDataException("The cl100k_base table is missing from Microsoft.ML.Tokenizers.Data.Cl100kBase.");
        using var reader = new StreamReader(new DeflateStream(resource, CompressionMode.Decompress), Encoding.ASCII);
        var byRank = new Dictionary<int, string>();
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line.StartsWith("Capacity:", StringComparison.Ordinal)) continue;
            int space = line.IndexOf(' ');
            int rank = space < 0 ? byRank.Count : int.Parse(line.AsSpan(space + 1), System.Globalization.CultureInfo.InvariantCulture);
            var token = Encoding.Latin1.GetString(Convert.FromBase64String(space < 0 ? line : line[..space]));
            if (!byRank.TryAdd(rank, token)) throw new InvalidDataException($"cl100k_base lists rank {rank} twice.");
        }
        var ranked = new string[Cl100kMergeableCount];
        for (int r = 0; r < ranked.Length; r++)
            ranked[r] = byRank.TryGetValue(r, out var bytes) ? bytes : throw new InvalidDataException($"cl100k_base has no rank {r} ({byRank.Count} ranks).");
        return ranked;
    }
}
