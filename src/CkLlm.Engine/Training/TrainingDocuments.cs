using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Knowledge.Ingestion;

namespace CkLlm.Engine.Training;

/// <summary>Reads training documents from files through the same readers as the knowledge base (PDF, DOCX, HTML,
/// Markdown, CSV, JSON, text), so binary files are refused instead of trained on as garbage text.</summary>
public static class TrainingDocuments
{
    /// <summary>The file's text, sections joined by a blank line. Throws <see cref="UnreadableDocumentException"/>
    /// for binary, malformed or unreadable files.</summary>
    public static string ReadFile(string path)
    {
        path = Path.GetFullPath(path);
        byte[] content;
        try { content = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UnreadableDocumentException(path, e.Message, e);
        }
        // TODO(harden's reader registry): switch to the registry's entry point when it lands on main.
        var document = DocumentReader.Read(path, content);
        return string.Join("\n\n", document.Sections.Select(s => s.Text.Trim('\n')).Where(t => t.Length > 0));
    }
}
