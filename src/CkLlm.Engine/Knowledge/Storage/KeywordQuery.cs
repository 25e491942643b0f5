namespace CkLlm.Engine.Knowledge.Storage;

/// <summary>Free text as keyword-search terms: words (letters, digits, underscore), lower-cased, stop words dropped
/// unless nothing else is left, each once. Both stores build their query syntax from the same terms.</summary>
internal static class KeywordQuery
{
    public static IReadOnlyList<string> Terms(string query)
    {
        var words = new List<string>();
        var sb = new System.Text.StringBuilder();
        foreach (var ch in query + " ")
        {
            if (char.IsLetterOrDigit(ch) || ch == '_') sb.Append(ch);
            else if (sb.Length > 0) { words.Add(sb.ToString()); sb.Clear(); }
        }
        var distinct = words.Select(w => w.ToLowerInvariant()).Where(w => !StopWords.Contains(w)).Distinct().ToList();
        return distinct.Count == 0 ? words.Select(w => w.ToLowerInvariant()).Distinct().ToList() : distinct;
    }

    /// <summary>An FTS5 expression: each term quoted (so punctuation cannot break the syntax), OR-ed; null without terms.</summary>
    public static string? ToMatchExpression(string query)
    {
        var terms = Terms(query);
        return terms.Count == 0 ? null : string.Join(" OR ", terms.Select(w => "\"" + w + "\""));
    }

    private static readonly HashSet<string> StopWords = new(StringComparer.Ordinal)
    {
        "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how", "i", "in", "is", "it",
        "its", "me", "my", "of", "on", "or", "that", "the", "this", "to", "what", "when", "where", "which", "who", "why",
        "with", "you", "your", "should", "would", "will", "use", "using", "into", "there", "their", "than", "then", "so",
    };
}
