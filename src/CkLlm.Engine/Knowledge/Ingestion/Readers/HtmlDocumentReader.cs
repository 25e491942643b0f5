using System.Net;
using System.Text.RegularExpressions;

namespace CkLlm.Engine.Knowledge.Ingestion.Readers;

/// <summary>Html documents.</summary>
public sealed partial class HtmlDocumentReader() : DocumentReaderBase("Html", true, ".html", ".htm", ".xhtml")
{
    public override IEnumerable<DocumentSection> Read(DocumentFile file, CancellationToken cancellationToken) => ReadHtml(file.ReadAllText()).Sections;

    [GeneratedRegex(@"<(script|style)\b[^>]*>.*?</\1\s*>|<!--.*?-->|<[^>]*>", RegexOptions.Singleline | RegexOptions.IgnoreCase)]
    private static partial Regex HtmlMarkup();

    [GeneratedRegex(@"<h([1-6])\b[^>]*>(.*?)</h\1\s*>", RegexOptions.Singleline | RegexOptions.IgnoreCase)]
    private static partial Regex HtmlHeading();

    /// <summary>Text only: markup is replaced by the line breaks it contained, so line numbers still match the source.</summary>
    internal static ReadDocument ReadHtml(string html)
    {
        var sections = new List<DocumentSection>();
        var headings = new List<(int Level, string Text)>();
        int start = 0;
        string? currentHeading = null;

        void Add(int from, int to)
        {
            if (to <= from) return;
            var text = StripMarkup(html[from..to]);
            if (!string.IsNullOrWhiteSpace(text))
                sections.Add(new DocumentSection(text, 1 + CountLines(html, from), null, currentHeading));
        }

        foreach (Match m in HtmlHeading().Matches(html))
        {
            Add(start, m.Index);
            int level = m.Groups[1].Value[0] - '0';
            while (headings.Count > 0 && headings[^1].Level >= level) headings.RemoveAt(headings.Count - 1);
            headings.Add((level, StripMarkup(m.Groups[2].Value).Trim()));
            currentHeading = string.Join(" > ", headings.Select(h => h.Text));
            start = m.Index;
        }
        Add(start, html.Length);
        return new ReadDocument("Html", sections);
    }

    private static string StripMarkup(string html)
    {
        var text = HtmlMarkup().Replace(html, m => new string('\n', m.Value.Count(c => c == '\n')) + " ");
        return WebUtility.HtmlDecode(text);
    }

    private static int CountLines(string text, int end)
    {
        int n = 0;
        for (int i = 0; i < end; i++) if (text[i] == '\n') n++;
        return n;
    }

}
