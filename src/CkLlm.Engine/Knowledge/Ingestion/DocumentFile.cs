using System.Security.Cryptography;
using System.Text;

namespace CkLlm.Engine.Knowledge.Ingestion;

/// <summary>
/// A file as readers see it. Opening it streams the bytes once (bounded memory) to compute the SHA-256 content hash,
/// detect the text encoding and spot binary content; readers then stream it again.
/// Encoding, an explicit choice: a byte-order mark decides (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE); without one the
/// file is UTF-8 when every byte sequence is valid UTF-8, otherwise it is decoded as Windows-1252 (the common legacy
/// Western encoding, a superset of Latin-1's printable range) and <see cref="EncodingWarning"/> names the file and the
/// offset of the first byte that is not UTF-8, so nothing is silently turned into U+FFFD.
/// </summary>
public sealed class DocumentFile
{
    /// <summary>Files larger than this are refused unless a larger limit is given (Add-CkKnowledge -MaxFileSize).</summary>
    public const long DefaultMaxFileSize = 100L * 1024 * 1024;

    private const int BufferSize = 1 << 20;
    private const int BinaryProbeBytes = 8192;
    private static readonly Lazy<Encoding> Windows1252 = new(() =>
    {
        Encoding.RegisterProvider(CodePagesEncodingProvider.Instance);
        return Encoding.GetEncoding(1252);
    });

    private readonly Func<Stream> _open;

    private DocumentFile(string path, Func<Stream> open)
    {
        Path = path;
        _open = open;
    }

    public string Path { get; }
    public long Length { get; private set; }

    /// <summary>Hex SHA-256 of the bytes.</summary>
    public string Hash { get; private set; } = "";

    /// <summary>The first bytes (for content sniffing).</summary>
    public byte[] Head { get; private set; } = [];

    /// <summary>The encoding text readers decode with.</summary>
    public Encoding Encoding { get; private set; } = Encoding.UTF8;

    /// <summary>Set when the bytes were not valid UTF-8 and a legacy encoding was chosen (names file and offset).</summary>
    public string? EncodingWarning { get; private set; }

    /// <summary>True when a NUL byte appears near the start of a file without a UTF-16/32 byte-order mark.</summary>
    public bool LooksBinary { get; private set; }

    /// <summary>Scans the file at <paramref name="path"/>.</summary>
    /// <exception cref="DocumentTooLargeException">It is larger than <paramref name="maxFileSize"/>.</exception>
    /// <exception cref="UnreadableDocumentException">It cannot be opened or read.</exception>
    public static DocumentFile Open(string path, long maxFileSize = DefaultMaxFileSize, CancellationToken cancellationToken = default)
    {
        try
        {
            var length = new FileInfo(path).Length;
            if (maxFileSize > 0 && length > maxFileSize) throw new DocumentTooLargeException(path, length, maxFileSize);
            var file = new DocumentFile(path, () => new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, BufferSize, FileOptions.SequentialScan));
            file.Scan(cancellationToken);
            return file;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new UnreadableDocumentException(path, ex.Message, ex);
        }
    }

    /// <summary>In-memory content under a name (tests, and text that never was a file).</summary>
    public static DocumentFile FromBytes(string path, byte[] content)
    {
        var file = new DocumentFile(path, () => new MemoryStream(content, writable: false));
        file.Scan(CancellationToken.None);
        return file;
    }

    /// <summary>Hex SHA-256 of a file, streamed.</summary>
    public static string HashFile(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, BufferSize, FileOptions.SequentialScan);
        return Convert.ToHexString(SHA256.HashData(stream));
    }

    public Stream OpenRead() => _open();

    public byte[] ReadAllBytes()
    {
        using var stream = _open();
        using var copy = new MemoryStream(Length > 0 && Length < int.MaxValue ? (int)Length : 0);
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    /// <summary>The whole text, decoded, with CRLF as LF (formats that need the whole document: Markdown, HTML, JSON, CSV).</summary>
    public string ReadAllText()
    {
        using var reader = new StreamReader(_open(), Encoding, detectEncodingFromByteOrderMarks: false);
        SkipByteOrderMark(reader);
        return reader.ReadToEnd().Replace("\r\n", "\n");
    }

    /// <summary>The text in blocks of whole lines of at most about <paramref name="maxChars"/> characters (a longer
    /// line is cut), each with the 1-based number of its first line: plain text in bounded memory.</summary>
    public IEnumerable<(string Text, int StartLine)> ReadTextBlocks(int maxChars, CancellationToken cancellationToken)
    {
        using var reader = new StreamReader(_open(), Encoding, detectEncodingFromByteOrderMarks: false, BufferSize);
        SkipByteOrderMark(reader);
        var block = new StringBuilder();
        int line = 1, blockStart = 1;
        string? text;
        while ((text = reader.ReadLine()) is not null)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (block.Length > 0 && block.Length + text.Length >= maxChars)
            {
                yield return (block.ToString(), blockStart);
                block.Clear();
            }
            int at = 0;
            // A single line longer than a block (minified code, base64) is cut into blocks of its own.
            for (; text.Length - at > maxChars; at += maxChars) yield return (text.Substring(at, maxChars), line);
            if (block.Length == 0) blockStart = line;
            block.Append(text, at, text.Length - at).Append('\n');
            line++;
        }
        if (block.Length > 0) yield return (block.ToString(), blockStart);
    }

    private static void SkipByteOrderMark(StreamReader reader)
    {
        if (reader.Peek() == '\uFEFF') reader.Read();
    }

    private void Scan(CancellationToken cancellationToken)
    {
        using var stream = _open();
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        // Buffers sized to the file: most documents are small, and a fresh 1 MB pair per file dominated their cost.
        var size = (int)Math.Clamp(stream.CanSeek ? stream.Length : BufferSize, 1, BufferSize);
        var buffer = new byte[size];
        var utf8 = new UTF8Encoding(false, throwOnInvalidBytes: true).GetDecoder();
        var chars = new char[Encoding.UTF8.GetMaxCharCount(size)];
        long offset = 0, invalidAt = -1;
        Encoding? byBom = null;
        int read;
        while ((read = stream.Read(buffer, 0, buffer.Length)) > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            sha.AppendData(buffer, 0, read);
            if (offset == 0)
            {
                Head = buffer[..Math.Min(read, BinaryProbeBytes)];
                byBom = EncodingFromByteOrderMark(Head);
                LooksBinary = byBom is null && Array.IndexOf(Head, (byte)0) >= 0;
            }
            if (byBom is null && invalidAt < 0)
            {
                try { utf8.GetChars(buffer, 0, read, chars, 0, flush: false); }
                catch (DecoderFallbackException e) { invalidAt = offset + Math.Max(0, e.Index); }
            }
            offset += read;
        }
        if (byBom is null && invalidAt < 0)
        {
            try { utf8.GetChars([], 0, 0, chars, 0, flush: true); }
            catch (DecoderFallbackException) { invalidAt = offset - 1; }
        }
        Length = offset;
        Hash = Convert.ToHexString(sha.GetHashAndReset());
        if (byBom is not null) Encoding = byBom;
        else if (invalidAt >= 0 && !LooksBinary)
        {
            Encoding = Windows1252.Value;
            EncodingWarning = $"'{Path}' is not valid UTF-8 (the first invalid byte is at offset {invalidAt}); it was read as Windows-1252. Save it as UTF-8 if that is wrong.";
        }
    }

    private static Encoding? EncodingFromByteOrderMark(byte[] head) => head switch
    {
        [0xEF, 0xBB, 0xBF, ..] => new UTF8Encoding(false),
        [0xFF, 0xFE, 0x00, 0x00, ..] => new UTF32Encoding(bigEndian: false, byteOrderMark: false),
        [0x00, 0x00, 0xFE, 0xFF, ..] => new UTF32Encoding(bigEndian: true, byteOrderMark: false),
        [0xFF, 0xFE, ..] => new UnicodeEncoding(bigEndian: false, byteOrderMark: false),
        [0xFE, 0xFF, ..] => new UnicodeEncoding(bigEndian: true, byteOrderMark: false),
        _ => null,
    };
}

/// <summary>A file over the per-file size limit; it was not read.</summary>
public sealed class DocumentTooLargeException : KnowledgeBaseException
{
    public DocumentTooLargeException(string path, long size, long limit)
        : base($"'{path}' is {size:N0} bytes, over the per-file limit of {limit:N0} bytes; it was skipped. Raise -MaxFileSize to include it.")
    {
        Path = path;
        Size = size;
        Limit = limit;
    }

    public string Path { get; }
    public long Size { get; }
    public long Limit { get; }
}
