namespace CkLlm.Engine.Knowledge;

/// <summary>No knowledge base at the path a read-only operation named (nothing is created there).</summary>
public sealed class KnowledgeBaseNotFoundException : KnowledgeBaseException
{
    public KnowledgeBaseNotFoundException(string directory)
        : base($"There is no knowledge base at '{directory}' (no {KnowledgeBase.DatabaseFileName} there). Check the path, or create one with Add-CkKnowledge.")
        => Directory = directory;

    /// <summary>A knowledge base missing elsewhere than in a directory (a database server): <paramref name="location"/>
    /// is its URI, <paramref name="message"/> says what is missing.</summary>
    public KnowledgeBaseNotFoundException(string location, string message) : base(message) => Directory = location;

    public string Directory { get; }

    /// <summary>True when <paramref name="directory"/> holds a knowledge base's database.</summary>
    public static bool Exists(string directory) => File.Exists(Path.Combine(directory, KnowledgeBase.DatabaseFileName));
}

/// <summary>
/// Removing sources because their files are missing is refused when it would take more than half of the knowledge
/// base in one call: an unmounted share or a moved tree looks exactly like deleted files.
/// </summary>
public static class PruneGuard
{
    /// <summary>The error to report, or null when removing <paramref name="missing"/> of <paramref name="total"/>
    /// sources is within the limit (or <paramref name="force"/> is set).</summary>
    public static KnowledgeBaseException? Check(IReadOnlyCollection<KnowledgeSource> missing, int total, bool force)
    {
        if (force || missing.Count == 0 || missing.Count * 2 <= total) return null;
        var examples = string.Join(", ", missing.Take(3).Select(s => $"'{s.Source}'"));
        return new MassRemovalException(
            $"{missing.Count} of the {total} sources would be removed because their files are missing (for example {examples}). " +
            "That is more than half of the knowledge base, which is what an unmounted share or a moved folder looks like, so nothing was removed. " +
            "Check the paths, or use -Force to remove them.", missing.Count, total);
    }
}

/// <summary>A prune that would remove more than half of the sources was refused.</summary>
public sealed class MassRemovalException(string message, int missing, int total) : KnowledgeBaseException(message)
{
    public int Missing { get; } = missing;
    public int Total { get; } = total;
}
