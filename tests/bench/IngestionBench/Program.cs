using System.Diagnostics;
using System.Text.Json;
using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Knowledge.Embedding;
using CkLlm.Engine.Knowledge.Ingestion;

// Usage: IngestionBench <small-files-dir> <big-file> <end-to-end-small-dir> <end-to-end-big-file> <work-dir> <out.json>
// Front end (read + chunk with the MiniLM tokenizer, default chunk settings) over the small files and the big file;
// then end to end (Add through KnowledgeBase.AddFile, MiniLM embedding, SQLite) over a bounded pair of the same kind.
if (args.Length != 6) { Console.Error.WriteLine("usage: IngestionBench small-dir big-file e2e-small-dir e2e-big-file work-dir out.json"); return 2; }
var (smallDir, bigFile, e2eSmallDir, e2eBigFile, work, output) = (args[0], args[1], args[2], args[3], args[4], args[5]);
var embedder = EmbedderRegistry.Resolve(null);
var defaults = new KnowledgeBaseOptions();
// One chunker for every run, as in a knowledge base; the large file is the small files' text repeated, so a warm-up
// over the small files fills the word-token cache for both and the runs compare reading and chunking, not the cache.
var chunker = new TextChunker(embedder.CountTokens, defaults.ChunkSize, defaults.ChunkOverlap, embedder.MaxTokens);

object FrontEnd(string label, IEnumerable<string> files)
{
    GC.Collect();
    var before = Environment.WorkingSet;
    long bytes = 0, chunks = 0, peak = before;
    var clock = Stopwatch.StartNew();
    foreach (var path in files)
    {
        var file = DocumentFile.Open(path, maxFileSize: 0);
        bytes += file.Length;
        var reader = DocumentReaderRegistry.Default.Find(path, file.Head);
        foreach (var section in DocumentReader.ReadSections(file, reader, CancellationToken.None))
        {
            foreach (var _ in chunker.Chunk(section)) chunks++;
            peak = Math.Max(peak, Environment.WorkingSet);
        }
    }
    clock.Stop();
    Console.WriteLine($"{label}: {bytes / 1e6:F1} MB, {chunks} chunks in {clock.Elapsed.TotalSeconds:F1} s = {chunks / clock.Elapsed.TotalSeconds:F0} chunks/s");
    return new { Label = label, Megabytes = Math.Round(bytes / 1e6, 2), Chunks = chunks, Seconds = Math.Round(clock.Elapsed.TotalSeconds, 2),
        ChunksPerSecond = Math.Round(chunks / clock.Elapsed.TotalSeconds, 1), WorkingSetGrowthMB = Math.Round((peak - before) / 1e6, 1) };
}

object EndToEnd(string label, IEnumerable<string> files)
{
    var directory = Path.Combine(work, "kb-" + Guid.NewGuid().ToString("N"));
    using var kb = KnowledgeBase.Open(directory);
    long bytes = 0, chunks = 0;
    var clock = Stopwatch.StartNew();
    foreach (var path in files)
    {
        var result = kb.AddFile(path, maxFileSize: 0);
        bytes += new FileInfo(path).Length;
        chunks += result.Chunks;
    }
    kb.Flush();
    clock.Stop();
    Console.WriteLine($"{label}: {bytes / 1e6:F2} MB, {chunks} chunks in {clock.Elapsed.TotalSeconds:F1} s = {chunks / clock.Elapsed.TotalSeconds:F1} chunks/s");
    return new { Label = label, Megabytes = Math.Round(bytes / 1e6, 2), Chunks = chunks, Seconds = Math.Round(clock.Elapsed.TotalSeconds, 2),
        ChunksPerSecond = Math.Round(chunks / clock.Elapsed.TotalSeconds, 2) };
}

var small = Directory.GetFiles(smallDir).Order(StringComparer.Ordinal).ToList();
var e2eSmall = Directory.GetFiles(e2eSmallDir).Order(StringComparer.Ordinal).ToList();
FrontEnd("warm-up", small); // JIT, tokenizer load and word-token cache, not reported
var results = new
{
    FrontEnd = new[] { FrontEnd("small files", small), FrontEnd("one large file", [bigFile]) },
    EndToEnd = new[] { EndToEnd("small files", e2eSmall), EndToEnd("one large file", [e2eBigFile]) },
    Embedder = embedder.Id,
    Environment.ProcessorCount,
};
File.WriteAllText(output, JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true }));
return 0;
