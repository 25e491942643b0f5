namespace CkLlm.Engine.Knowledge.Ingestion;

/// <summary>A contiguous piece of a document that shares one heading path (or page, or record).</summary>
public sealed record DocumentSection(string Text, int? StartLine, int? Page, string? Heading,
    IReadOnlyDictionary<string, string>? Metadata = null)
{
    /// <summary>A record is embedded whole (it is never split across chunks unless it exceeds the window).</summary>
    public bool IsRecord { get; init; }
}

/// <summary>One chunk ready to embed and store.</summary>
internal sealed record DocumentChunk(string Text, int? LineStart, int? LineEnd, int? Page, string? Heading,
    IReadOnlyDictionary<string, string>? Metadata, int TokenCount);
