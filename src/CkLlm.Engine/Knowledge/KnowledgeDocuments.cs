using System.Text;
using CkLlm.Engine.Knowledge.Storage;
using Microsoft.Data.Sqlite;

namespace CkLlm.Engine.Knowledge;

/// <summary>One source of a knowledge base as text, rebuilt from its chunks.</summary>
public sealed record KnowledgeDocument(string Source, SourceKind Kind, string Text, int Chunks);

/// <summary>
/// Reads a knowledge base's sources back as documents (e.g. to fine-tune on them). Opens the database read-only and
/// loads no embedder and no vector index, so it works next to a session or another process that is writing
/// (readers never take the writer lock).
/// </summary>
public static class KnowledgeDocuments
{
    /// <summary>
    /// The documents of the knowledge base in <paramref name="directory"/>, one per source, ordered by source name;
    /// each is its chunks in order with the chunk overlap removed. An empty knowledge base gives an empty list.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The directory does not exist.</exception>
    /// <exception cref="FileNotFoundException">The directory holds no knowledge base.</exception>
    /// <exception cref="KnowledgeBaseCorruptException">The database is damaged.</exception>
    /// <exception cref="KnowledgeBaseException">The database cannot be read (another schema version, no access).</exception>
    public static IReadOnlyList<KnowledgeDocument> Read(string directory, System.Net.NetworkCredential? credential = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        var chunks = KnowledgeLocation.IsServer(directory) ? ReadServer(directory, credential) : ReadFolder(directory);
        return chunks.GroupBy(c => c.Source)
            .Select(g => { var list = g.ToList(); return new KnowledgeDocument(g.Key, list[0].Kind, Join(list), list.Count); })
            .ToList();
    }

    private static List<StoredChunkText> ReadFolder(string directory)
    {
        directory = Path.GetFullPath(directory);
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException($"The knowledge base directory '{directory}' does not exist.");
        var database = Path.Combine(directory, KnowledgeBase.DatabaseFileName);
        if (!File.Exists(database))
            throw new FileNotFoundException($"'{directory}' is not a knowledge base: it has no {KnowledgeBase.DatabaseFileName}.", database);
        try
        {
            using var store = new SqliteKnowledgeStore(database, readOnly: true);
            return store.ReadChunkTexts();
        }
        catch (SqliteException ex) when (SqliteKnowledgeStore.IsCorruption(ex))
        {
            throw SqliteKnowledgeStore.Corrupt(database, ex);
        }
        catch (SqliteException ex)
        {
            throw new KnowledgeBaseException($"The knowledge base '{directory}' cannot be read: {ex.Message}", ex);
        }
    }

    /// <summary>A knowledge base on a server is read without creating anything (a missing one is not found).</summary>
    private static List<StoredChunkText> ReadServer(string uri, System.Net.NetworkCredential? credential)
    {
        using var store = Storage.Postgres.PostgresKnowledgeStore.Open(Storage.Postgres.PostgresLocation.Parse(uri, credential), create: false);
        try { return store.ReadChunkTexts(); }
        catch (Exception ex) when (store.Translate(ex) is { } translated) { throw translated; }
    }

    /// <summary>Joins one source's chunks (in order): a chunk that continues the previous one within the same section
    /// loses the words it repeats; sections and records are separated by a blank line.</summary>
    internal static string Join(IReadOnlyList<StoredChunkText> chunks)
    {
        var text = new StringBuilder();
        StoredChunkText? previous = null;
        foreach (var chunk in chunks)
        {
            if (previous is null)
            {
                text.Append(chunk.Text);
            }
            else if (SameSection(previous, chunk))
            {
                // Overlapping chunks share lines; a chunk that starts on a later line cannot repeat anything.
                bool mayOverlap = chunk.LineStart is null || previous.LineEnd is null || chunk.LineStart <= previous.LineEnd;
                int overlap = mayOverlap ? OverlapLength(previous.Text, chunk.Text) : 0;
                // Without overlap the whitespace between the chunks was trimmed away: restore a line break or a space.
                if (overlap == 0) text.Append((chunk.LineStart - previous.LineEnd) switch { null or <= 0 => " ", 1 => "\n", _ => "\n\n" });
                text.Append(chunk.Text.AsSpan(overlap));
            }
            else
            {
                text.Append("\n\n").Append(chunk.Text);
            }
            previous = chunk;
        }
        return text.ToString();
    }

    /// <summary>Chunks of one section share heading and page; records never continue each other.</summary>
    private static bool SameSection(StoredChunkText previous, StoredChunkText next) =>
        next.Kind != SourceKind.Records && previous.Heading == next.Heading && previous.Page == next.Page;

    /// <summary>
    /// Length of the longest prefix of <paramref name="next"/> that ends <paramref name="previous"/>, on word boundaries
    /// in both: the chunker steps back whole words, so that is the repeated overlap.
    /// </summary>
    internal static int OverlapLength(string previous, string next)
    {
        for (int k = Math.Min(previous.Length, next.Length - 1); k > 0; k--)
        {
            if (!char.IsWhiteSpace(next[k])) continue; // the overlap ends at a word end in the next chunk
            int start = previous.Length - k;
            if (start > 0 && !char.IsWhiteSpace(previous[start - 1])) continue; // ... and starts at a word start in the previous one
            if (string.CompareOrdinal(previous, start, next, 0, k) == 0) return k;
        }
        return 0;
    }
}
