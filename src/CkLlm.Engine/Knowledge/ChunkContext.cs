using System.Text;
using System.Text.RegularExpressions;
using CkLlm.Engine.Knowledge.Ingestion;

namespace CkLlm.Engine.Knowledge;

/// <summary>
/// What a chunk from the middle of a long document needs to say what it is about: the document's title (man/pydoc
/// page name and summary line, first heading, or file name) and the chunk's heading path. Both go in front of the
/// text the embedder sees and into their own keyword-index columns. The prefix is cut to <see cref="ReservedTokens"/>
/// embedder tokens, and the chunker is given the window minus that reserve, so prefix plus chunk never exceed it.
/// </summary>
internal static partial class ChunkContext
{
    /// <summary>Embedder tokens kept free in every chunk for the title and heading path.</summary>
    public const int ReservedTokens = 48;

    private const int MaxTitleChars = 160;

    // File names that say nothing by themselves: the folder names the document instead ("zlib1g/README").
    private static readonly HashSet<string> GenericNames = new(StringComparer.OrdinalIgnoreCase)
    {
        "readme", "index", "changelog", "news", "copyright", "changes", "authors", "todo", "faq", "install", "usage", "intro", "introduction", "main", "overview",
    };

    /// <summary>The document's title from its name and opening text; null when there is nothing better than a hash.</summary>
    public static string? Title(string source, SourceKind kind, IReadOnlyList<DocumentSection> sections) =>
        Title(source, kind, sections.Count > 0 ? sections[0] : null,
            sections.Select(s => s.Heading).FirstOrDefault(h => !string.IsNullOrWhiteSpace(h)));

    /// <summary>The same title from what a streamed document yields: its first section and its first heading.</summary>
    public static string? Title(string source, SourceKind kind, DocumentSection? opening, string? heading)
    {
        var name = TitleFromSourceName(source, kind);
        var described = opening is null ? null : ManPageDescription(opening.Text);
        var extra = described ?? heading?.Split(" > ")[0].Trim();
        string? title = extra is null ? name
            : name is null || extra.Contains(name, StringComparison.OrdinalIgnoreCase) ? extra
            : $"{name}: {extra}";
        return title is null ? null : Shorten(title, MaxTitleChars);
    }

    /// <summary>A title from the source name only (file stem, or a folder plus a generic file name); null for
    /// generated names ("text:3fa2...").</summary>
    public static string? TitleFromSourceName(string source, SourceKind kind)
    {
        if (kind != SourceKind.File)
            return source.StartsWith("text:", StringComparison.Ordinal) || source.StartsWith("records:", StringComparison.Ordinal) ? null : source;
        var file = Path.GetFileName(source);
        var stem = file;
        // "ls.1.gz", "guide.html", "json.txt": drop the format and compression suffixes but keep a man section ("ls.1").
        foreach (var ext in new[] { ".gz", ".txt", ".md", ".markdown", ".html", ".htm", ".xml", ".pdf", ".docx", ".json", ".csv", ".rst" })
            if (stem.EndsWith(ext, StringComparison.OrdinalIgnoreCase)) stem = stem[..^ext.Length];
        if (stem.Length == 0) stem = file;
        var folder = Path.GetFileName(Path.GetDirectoryName(source));
        return GenericNames.Contains(stem) && !string.IsNullOrEmpty(folder) ? $"{folder}/{stem}" : stem;
    }

    /// <summary>The one-line summary under NAME in man and pydoc pages ("ls - list directory contents").</summary>
    internal static string? ManPageDescription(string text)
    {
        var m = NameSection().Match(text.Length > 4000 ? text[..4000] : text);
        if (!m.Success) return null;
        var line = Whitespace().Replace(m.Groups[1].Value, " ").Trim();
        return line.Length == 0 ? null : line;
    }

    /// <summary>The text the embedder sees: title and heading path (each left out when the chunk already starts with
    /// it), cut to <see cref="ReservedTokens"/>, then the chunk; all of it prepared in the knowledge base's
    /// <paramref name="style"/>.</summary>
    public static string EmbeddingText(string? title, DocumentChunk chunk, Func<string, int> countTokens, EmbeddingTextStyle style = EmbeddingTextStyle.Plain)
    {
        var prefix = style.Apply(Prefix(title, chunk.Heading, chunk.Text));
        var text = style.Apply(chunk.Text);
        if (prefix.Length == 0) return text;
        return FitTokens(prefix, ReservedTokens, countTokens) + "\n" + text;
    }

    /// <summary>
    /// Compound identifiers as the words they are made of: "TaskCompletionSource" as "Task Completion Source",
    /// "ExecStart=" as "Exec Start=", "HTMLParser" as "HTML Parser", "UTF8Encoding" as "UTF8 Encoding". Word-piece
    /// vocabularies (MiniLM's) cut a compound they do not know into fragments that carry little meaning ("dateonly" as
    /// "date", "##on", "##ly"). Acronyms with a plural or version ("IDs", "URIs", "IPv6") stay whole. For the embedder
    /// only: stored text, citations and the keyword index keep the identifiers as written.
    /// </summary>
    public static string SplitIdentifiers(string text) => IdentifierBoundary().Replace(text, " ");

    private static string Prefix(string? title, string? heading, string text)
    {
        var sb = new StringBuilder();
        var head = text.Length > 400 ? text[..400] : text;
        if (!string.IsNullOrWhiteSpace(title) && !head.Contains(title, StringComparison.OrdinalIgnoreCase)) sb.Append(title);
        if (!string.IsNullOrWhiteSpace(heading) && !head.Contains(heading, StringComparison.Ordinal)
            && !string.Equals(heading, title, StringComparison.OrdinalIgnoreCase))
        {
            if (sb.Length > 0) sb.Append('\n');
            sb.Append(heading);
        }
        return sb.ToString();
    }

    /// <summary>Cuts <paramref name="text"/> at a word boundary so it has at most <paramref name="budget"/> tokens.</summary>
    internal static string FitTokens(string text, int budget, Func<string, int> countTokens)
    {
        if (countTokens(text) <= budget) return text;
        var words = text.Split(' ');
        int lo = 0, hi = words.Length;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) / 2;
            if (countTokens(string.Join(' ', words, 0, mid)) <= budget) lo = mid; else hi = mid - 1;
        }
        return lo == 0 ? "" : string.Join(' ', words, 0, lo);
    }

    private static string Shorten(string text, int max) => text.Length <= max ? text : text[..max].TrimEnd();

    [GeneratedRegex(@"^\s*NAME\s*\r?\n[ \t]+(\S[^\n]*(?:\n[ \t]+\S[^\n]*){0,1})", RegexOptions.Multiline)]
    private static partial Regex NameSection();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();

    // Before an upper-case letter that starts a lower-case word: after a lower-case letter ("dateOnly"), after an
    // acronym ("HTMLParser") or after a digit ("UTF8Encoding"); the last two need two lower-case letters ("IDs" stays).
    [GeneratedRegex(@"(?<=\p{Ll})(?=\p{Lu}\p{Ll})|(?<=\p{Lu})(?=\p{Lu}\p{Ll}{2})|(?<=\p{Nd})(?=\p{Lu}\p{Ll}{2})")]
    private static partial Regex IdentifierBoundary();
}
