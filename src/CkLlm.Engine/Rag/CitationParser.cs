using System.Globalization;
using System.Text.RegularExpressions;

namespace CkLlm.Engine.Rag;

/// <summary>
/// Finds citation markers in an answer: [n], [n, m], [n; m], [n][m], [n-m] (hyphen or en dash) and mixes such as
/// [1, 3-4]. Markdown links and other bracketed text are not markers.
/// </summary>
public static partial class CitationParser
{
    /// <summary>A range wider than this is read as its two ends only (a [1-100000] typo must not allocate).</summary>
    public const int MaxRangeWidth = 64;

    /// <summary>Every cited number in order of first appearance, without duplicates.</summary>
    public static IReadOnlyList<int> Parse(string? answer)
    {
        var numbers = new List<int>();
        if (string.IsNullOrEmpty(answer)) return numbers;
        foreach (Match marker in MarkerPattern().Matches(answer))
        {
            foreach (var part in marker.Groups["body"].Value.Split([',', ';'], StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                var ends = part.Split(['-', '–'], StringSplitOptions.TrimEntries);
                if (!TryNumber(ends[0], out var first)) continue;
                if (ends.Length == 1) { Add(numbers, first); continue; }
                if (!TryNumber(ends[1], out var last)) { Add(numbers, first); continue; }
                var (low, high) = first <= last ? (first, last) : (last, first);
                if (high - low > MaxRangeWidth) { Add(numbers, low); Add(numbers, high); continue; }
                for (var n = low; n <= high; n++) Add(numbers, n);
            }
        }
        return numbers;
    }

    /// <summary>Splits cited numbers into those naming one of <paramref name="passageCount"/> passages and the rest.</summary>
    public static (IReadOnlyList<int> Cited, IReadOnlyList<int> Unknown) Classify(string? answer, int passageCount)
    {
        var all = Parse(answer);
        return (all.Where(n => n >= 1 && n <= passageCount).ToArray(), all.Where(n => n < 1 || n > passageCount).ToArray());
    }

    private static bool TryNumber(string text, out int number) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out number);

    private static void Add(List<int> numbers, int n)
    {
        if (!numbers.Contains(n)) numbers.Add(n);
    }

    // Digits, separated by commas, semicolons or dashes, nothing else, and not followed by "(" (a Markdown link).
    [GeneratedRegex(@"\[(?<body>\s*\d{1,6}\s*(?:[,;\-–]\s*\d{1,6}\s*)*)\](?!\()")]
    private static partial Regex MarkerPattern();
}
