using System.Security.Cryptography;
using System.Text.Json;

namespace CkLlm.Engine.Knowledge.Storage;

/// <summary>
/// A saved vector index and its checksum sidecar (<c>&lt;index&gt;.sha256</c>: checksum, count, generation, dimensions).
/// USearch files carry no checksum, and random bytes in the middle of one open and search silently, so a file is only
/// trusted when the sidecar matches it and the database.
/// </summary>
internal static class VectorIndexFile
{
    private sealed record IndexSidecar(string Sha256, int Count, long Generation, int Dimensions);

    public static string SidecarPath(string indexPath) => indexPath + ".sha256";

    /// <summary>Moves a fully written <paramref name="temporaryPath"/> to <paramref name="path"/> with a new sidecar
    /// (flushed to disk first, so a crash leaves either the old pair or the new one).</summary>
    public static void Commit(string temporaryPath, string path, int count, long generation, int dimensions)
    {
        var sidecarTmp = SidecarPath(path) + ".tmp";
        var sidecar = new IndexSidecar(Sha256(temporaryPath), count, generation, dimensions);
        File.WriteAllText(sidecarTmp, JsonSerializer.Serialize(sidecar));
        using (var f = new FileStream(temporaryPath, FileMode.Open, FileAccess.Read)) f.Flush(flushToDisk: true);
        File.Move(temporaryPath, path, overwrite: true);
        File.Move(sidecarTmp, SidecarPath(path), overwrite: true);
    }

    /// <summary>Null when the file at <paramref name="path"/> can be trusted for this database state; otherwise why not.</summary>
    public static string? Check(string path, int dimensions, long expectedGeneration, int expectedCount)
    {
        if (!File.Exists(path)) return "index file missing";
        IndexSidecar? sidecar;
        try { sidecar = JsonSerializer.Deserialize<IndexSidecar>(File.ReadAllText(SidecarPath(path))); }
        catch (Exception ex) when (ex is IOException or JsonException) { return "checksum file missing or unreadable"; }
        if (sidecar is null) return "checksum file empty";
        if (sidecar.Dimensions != dimensions) return $"index has {sidecar.Dimensions} dimensions, expected {dimensions}";
        if (sidecar.Generation != expectedGeneration) return $"index is from generation {sidecar.Generation}, database is at {expectedGeneration}";
        if (sidecar.Count != expectedCount) return $"index holds {sidecar.Count} vectors, database {expectedCount}";
        if (!string.Equals(Sha256(path), sidecar.Sha256, StringComparison.OrdinalIgnoreCase)) return "index checksum mismatch";
        return null;
    }

    /// <summary>The generation a saved index says it reflects (null without a readable sidecar); its content is
    /// still verified by <see cref="Check"/> when it is loaded.</summary>
    public static long? SavedGeneration(string path)
    {
        try { return JsonSerializer.Deserialize<IndexSidecar>(File.ReadAllText(SidecarPath(path)))?.Generation; }
        catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException) { return null; }
    }

    private static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream));
    }
}
