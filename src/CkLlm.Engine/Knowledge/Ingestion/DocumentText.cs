using System.Text;

namespace CkLlm.Engine.Knowledge.Ingestion;

/// <summary>
/// A file's text as Add-CkKnowledge reads it (same readers, same encoding rules, same binary refusal), for callers
/// that need plain text rather than chunks: Start-CkFineTune's -Path.
/// </summary>
public static class DocumentText
{
    /// <summary>The text of every section of the file, sections separated by a blank line.</summary>
    /// <param name="warning">Receives a note when the bytes were not UTF-8 and a legacy encoding was used (optional).</param>
    /// <exception cref="UnreadableDocumentException">Binary, malformed, or unreadable.</exception>
    /// <exception cref="DocumentTooLargeException">Larger than <paramref name="maxFileSize"/>.</exception>
    public static string ReadFile(string path, long maxFileSize = DocumentFile.DefaultMaxFileSize, Action<string>? warning = null,
        CancellationToken cancellationToken = default)
    {
        var file = DocumentFile.Open(Path.GetFullPath(path), maxFileSize, cancellationToken);
        if (file.EncodingWarning is { } note) warning?.Invoke(note);
        var reader = DocumentReaderRegistry.Default.Find(file.Path, file.Head);
        var text = new StringBuilder();
        foreach (var section in DocumentReader.ReadSections(file, reader, cancellationToken))
        {
            if (string.IsNullOrWhiteSpace(section.Text)) continue;
            if (text.Length > 0) text.Append("\n\n");
            text.Append(section.Text.TrimEnd('\n'));
        }
        return text.ToString();
    }
}
