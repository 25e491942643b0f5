namespace CkLlm.Engine.Knowledge.Ingestion.Readers;

/// <summary>Plain text and source code, streamed in blocks of whole lines so a file of any size is read in bounded
/// memory; also the fallback for extensions no other reader claims.</summary>
public sealed class TextDocumentReader() : DocumentReaderBase("Text", true, ".txt", ".text", ".log")
{
    /// <summary>Characters per section; each section is chunked on its own.</summary>
    public const int BlockChars = 256 * 1024;

    public override IEnumerable<DocumentSection> Read(DocumentFile file, CancellationToken cancellationToken)
    {
        foreach (var (text, startLine) in file.ReadTextBlocks(BlockChars, cancellationToken))
            yield return new DocumentSection(text, startLine, null, null);
    }
}
