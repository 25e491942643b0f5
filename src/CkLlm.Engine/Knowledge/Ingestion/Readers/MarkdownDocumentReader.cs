using System.Text;
using Markdig;
using Markdig.Syntax;

namespace CkLlm.Engine.Knowledge.Ingestion.Readers;

/// <summary>Markdown documents.</summary>
public sealed class MarkdownDocumentReader() : DocumentReaderBase("Markdown", true, ".md", ".markdown", ".mdx")
{
    public override IEnumerable<DocumentSection> Read(DocumentFile file, CancellationToken cancellationToken) => ReadMarkdown(file.ReadAllText()).Sections;

    internal static ReadDocument ReadMarkdown(string text)
    {
        var doc = Markdown.Parse(text, new MarkdownPipelineBuilder().UseAdvancedExtensions().Build());
        var sections = new List<DocumentSection>();
        var headings = new List<(int Level, string Text)>();
        int sectionStart = 0, sectionLine = 0;

        // Returns false for a section that is only its heading line: that heading then stays in front of the next
        // section instead of becoming a chunk of its own.
        bool Close(int endOffset)
        {
            if (endOffset <= sectionStart) return true;
            var body = text[sectionStart..endOffset];
            if (string.IsNullOrWhiteSpace(body)) return true;
            int firstBreak = body.IndexOf('\n');
            bool onlyHeading = headings.Count > 0 && (firstBreak < 0 || string.IsNullOrWhiteSpace(body[firstBreak..]));
            if (onlyHeading) return false;
            sections.Add(new DocumentSection(body, sectionLine + 1, null, headings.Count == 0 ? null : string.Join(" > ", headings.Select(h => h.Text))));
            return true;
        }

        foreach (var block in doc)
        {
            if (block is not HeadingBlock heading) continue;
            bool closed = Close(heading.Span.Start);
            while (headings.Count > 0 && headings[^1].Level >= heading.Level) headings.RemoveAt(headings.Count - 1);
            var title = heading.Inline is null ? "" : InlineText(heading.Inline);
            headings.Add((heading.Level, title.Trim()));
            if (closed)
            {
                sectionStart = heading.Span.Start;
                sectionLine = heading.Line;
            }
        }
        Close(text.Length);
        return new ReadDocument("Markdown", sections);
    }

    private static string InlineText(Markdig.Syntax.Inlines.ContainerInline inline)
    {
        var sb = new StringBuilder();
        foreach (var child in inline.Descendants())
        {
            if (child is Markdig.Syntax.Inlines.LiteralInline lit) sb.Append(lit.Content.ToString());
            else if (child is Markdig.Syntax.Inlines.CodeInline code) sb.Append(code.Content);
        }
        return sb.ToString();
    }

}
