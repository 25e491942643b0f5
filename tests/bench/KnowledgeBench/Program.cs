using System.Diagnostics;
using System.Globalization;
using System.Numerics.Tensors;
using System.Text.Json;
using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Knowledge.Embedding;
using CkLlm.Engine.Knowledge.Ingestion;
using CkLlm.Engine.Knowledge.Storage;

// Usage:
//   KnowledgeBench hnsw <count> <random|clustered> <out.json> [queries]
//   KnowledgeBench latency <corpusDir> <kbDir> <out.json> <chunks> <questions.csv>
//   KnowledgeBench dump <kbDir> <embedder> <out.json> <questions.csv>
//   KnowledgeBench embed <texts.json> <embedder> <out.json>   (passages; for offline fusion experiments)
//   KnowledgeBench eval <corpusDir> <kbDir> <embedder> <out.json> <questions.csv> <perSplit> <distractors> [tune] [chunk=<tokens>]
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
var mode = args[0];
object result = mode switch
{
    "ingest" => Ingest(args[1], args[2], args.Length > 4 ? int.Parse(args[4]) : int.MaxValue),
    "hnsw" => Hnsw(int.Parse(args[1]), args[2], args.Length > 4 ? int.Parse(args[4]) : 200),
    "latency" => Latency(args[1], args[2], int.Parse(args[4]), args[5]),
    "dump" => EvalSet.Dump(args[1], args[2], args[4]),
    "embed" => EmbedTexts(args[1], args[2]),
    "eval" => EvalSet.Run(args[1], args[2], args[3], args[5], int.Parse(args[6]), int.Parse(args[7]), args.Skip(8).Contains("tune"),
        args.Skip(8).Where(a => a.StartsWith("chunk=", StringComparison.Ordinal)).Select(a => int.Parse(a[6..])).FirstOrDefault()),
    _ => throw new ArgumentException("mode: eval | latency | ingest | hnsw | dump | embed"),
};
var outPath = mode is "hnsw" or "ingest" or "latency" or "dump" or "embed" ? args[3] : args[4];
File.WriteAllText(outPath, JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
if (mode is not ("dump" or "embed")) Console.WriteLine(File.ReadAllText(outPath));

static float[][] EmbedTexts(string textsJson, string embedderName)
{
    using var embedder = EmbedderRegistry.Resolve(embedderName);
    var texts = JsonSerializer.Deserialize<string[]>(File.ReadAllText(textsJson)) ?? [];
    return texts.Chunk(16).SelectMany(batch => embedder.Embed(batch)).ToArray();
}

// Ingest speed against the raw encoder on the same chunks. The machine is shared, so the two are interleaved in
// rounds (ingest a slice of files, then encode exactly the chunks that slice produced) to keep load drift from
// favouring either side.
static object Ingest(string corpus, string work, int maxFiles)
{
    if (Directory.Exists(work)) Directory.Delete(work, true);
    var files = Directory.GetFiles(corpus, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).Take(maxFiles).ToArray();
    if (files.Length == 0) throw new ArgumentException($"No files in the corpus '{corpus}'.");
    using var kb = KnowledgeBase.Open(work);
    // The same model the knowledge base uses, called directly: the raw encoder.
    var embedder = EmbedderRegistry.Resolve(EmbedderRegistry.DefaultName);
    embedder.Embed(["warm up the raw encoder"]);
    _ = kb.Search("warm up");
    double ingestSeconds = 0, rawSeconds = 0;
    int chunks = 0, rawChunks = 0, seen = 0;
    var db = Path.Combine(work, KnowledgeBase.DatabaseFileName);
    foreach (var slice in files.Chunk(8))
    {
        var w = Stopwatch.StartNew();
        foreach (var f in slice) chunks += kb.AddFile(f).Chunks;
        ingestSeconds += w.Elapsed.TotalSeconds;
        var texts = ReadEmbeddingTexts(db, embedder).Skip(seen).ToList();
        seen += texts.Count;
        w.Restart();
        foreach (var batch in texts.Chunk(16)) embedder.Embed(batch);
        rawSeconds += w.Elapsed.TotalSeconds;
        rawChunks += texts.Count;
    }
    var f0 = Stopwatch.StartNew();
    kb.Flush();
    ingestSeconds += f0.Elapsed.TotalSeconds;
    return new
    {
        Embedder = embedder.Id,
        Files = files.Length,
        Chunks = chunks,
        IngestSeconds = Math.Round(ingestSeconds, 1),
        IngestChunksPerSecond = Math.Round(chunks / ingestSeconds, 2),
        RawEncoderChunksPerSecond = Math.Round(rawChunks / rawSeconds, 2),
        Ratio = Math.Round(chunks / ingestSeconds / (rawChunks / rawSeconds), 3),
    };
}

/// <summary>The texts ingestion embedded: each chunk with its document title and heading path in front.</summary>
static List<string> ReadEmbeddingTexts(string db, IEmbedder embedder)
{
    using var conn = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={db};Mode=ReadOnly");
    conn.Open();
    using var meta = conn.CreateCommand();
    meta.CommandText = $"SELECT value FROM meta WHERE key = '{EmbeddingTextStyles.MetaKey}'";
    var style = EmbeddingTextStyles.FromMeta(meta.ExecuteScalar() as string, db);
    using var cmd = conn.CreateCommand();
    cmd.CommandText = "SELECT s.title, c.heading, c.text FROM chunks c JOIN sources s ON s.id = c.source_id ORDER BY c.id";
    using var r = cmd.ExecuteReader();
    var list = new List<string>();
    while (r.Read())
    {
        var chunk = new DocumentChunk(r.GetString(2), null, null, null, r.IsDBNull(1) ? null : r.GetString(1), null, 0);
        list.Add(ChunkContext.EmbeddingText(r.IsDBNull(0) ? null : r.GetString(0), chunk, embedder.CountTokens, style));
    }
    return list;
}

/// <summary>
/// Query latency of the default search at a given number of chunks, query embedding included. The stored vectors are
/// random unit vectors (an embedder that embeds queries with the default model and passages randomly), so building
/// 10k chunks takes seconds instead of an hour of embedding; the exact scan and the fusion cost the same either way.
/// </summary>
static object Latency(string corpus, string work, int targetChunks, string questionsCsv)
{
    var model = EmbedderRegistry.Resolve(EmbedderRegistry.DefaultName);
    var name = "bench-random-passages+" + model.Id;
    EmbedderRegistry.Register(name, () => new RandomPassageEmbedder(name, model));
    using var kb = KnowledgeBase.Open(work, new KnowledgeBaseOptions { Embedder = name });
    foreach (var f in Directory.GetFiles(corpus, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
    {
        if (kb.GetStatistics().Chunks >= targetChunks) break;
        kb.AddFile(f);
    }
    kb.Flush();
    var queries = Questions.Read(questionsCsv).Select(q => q.Text).Take(200).ToList();
    kb.Search(queries[0]); // warm up
    var times = new List<double>();
    foreach (var q in queries)
    {
        var w = Stopwatch.StartNew();
        kb.Search(q);
        times.Add(w.Elapsed.TotalMilliseconds);
    }
    // Where a query's time goes: the query embedding alone, then each mode's search with the vector already computed.
    var vectors = queries.Select(kb.EmbedQuery).ToList();
    double StageP50(Action<int> stage)
    {
        var stageTimes = new List<double>();
        for (int i = 0; i < queries.Count; i++)
        {
            var w = Stopwatch.StartNew();
            stage(i);
            stageTimes.Add(w.Elapsed.TotalMilliseconds);
        }
        return Math.Round(Percentile(stageTimes, 0.5), 1);
    }
    return new
    {
        Embedder = model.Id,
        Chunks = kb.GetStatistics().Chunks,
        Queries = queries.Count,
        P50Ms = Math.Round(Percentile(times, 0.5), 1),
        P90Ms = Math.Round(Percentile(times, 0.9), 1),
        Stages = new
        {
            EmbedP50Ms = StageP50(i => kb.EmbedQuery(queries[i])),
            KeywordP50Ms = StageP50(i => kb.Search(queries[i], null, new SearchOptions { Mode = SearchMode.Keyword })),
            VectorP50Ms = StageP50(i => kb.Search(queries[i], vectors[i], new SearchOptions { Mode = SearchMode.Vector })),
            HybridWithoutEmbeddingP50Ms = StageP50(i => kb.Search(queries[i], vectors[i], new SearchOptions())),
        },
    };
}

static object Hnsw(int count, string distribution, int queries)
{
    const int dims = 384;
    // Data and queries share the same cluster structure (one generator); the queries are fresh samples, not indexed.
    var source = new SyntheticVectors(distribution, dims, new Random(42));
    var data = source.Sample(count, new Random(1));
    var query = source.Sample(queries, new Random(7));

    // Reference top-10: full sort of every cosine (vectors are normalised: dot = cosine), independent of the engine.
    var exact = new List<long[]>();
    foreach (var q in query)
    {
        var scores = new float[count];
        for (int i = 0; i < count; i++) scores[i] = TensorPrimitives.Dot(q, data[i]);
        exact.Add(Enumerable.Range(0, count).OrderByDescending(i => scores[i]).Take(10).Select(i => (long)i + 1).ToArray());
    }
    // How separated the true neighbours are: mean cosine of the 1st and the 100th neighbour (isotropic noise: nearly equal).
    var contrast = query.Take(20).Select(q => data.Select(d => TensorPrimitives.Dot(q, d)).OrderDescending().ToArray())
        .Select(s => (First: s[0], Hundredth: s[99])).ToList();

    var configs = new List<object>();
    object? exactPath = null;
    var builds = count <= 20_000 ? new[] { (16, 128), (32, 256) } : new[] { (16, 128) };
    foreach (var (m, efAdd) in builds)
    {
        using var index = new VectorIndex(dims, m, efAdd, 64);
        var build = Stopwatch.StartNew();
        var ids = Enumerable.Range(1, count).Select(i => (long)i).ToArray();
        for (int s = 0; s < count; s += 10_000)
            index.Add(ids[s..Math.Min(count, s + 10_000)], data[s..Math.Min(count, s + 10_000)]);
        var buildSeconds = build.Elapsed.TotalSeconds;
        foreach (var ef in new[] { 16, 64, 128, 256, 512, 1024 })
        {
            index.SetExpansionSearch(ef);
            var (p50, p99, recall) = Measure(query, exact, q => index.Search(q, 10));
            configs.Add(new
            {
                Connectivity = m, ExpansionAdd = efAdd, ExpansionSearch = ef,
                BuildVectorsPerSecond = Math.Round(count / buildSeconds, 0),
                P50Ms = Math.Round(p50, 3), P99Ms = Math.Round(p99, 3), RecallAt10 = Math.Round(recall, 4),
            });
        }
        if (exactPath is null)
        {
            var (p50, p99, recall) = Measure(query, exact, q => index.SearchExact(q, 10));
            exactPath = new { P50Ms = Math.Round(p50, 3), P99Ms = Math.Round(p99, 3), RecallAt10 = Math.Round(recall, 4) };
        }
    }
    return new
    {
        Count = count, Distribution = distribution, Dimensions = dims, Queries = queries,
        Neighbour1Cosine = Math.Round(contrast.Average(c => c.First), 3),
        Neighbour100Cosine = Math.Round(contrast.Average(c => c.Hundredth), 3),
        ExactScan = exactPath,
        Configs = configs,
    };
}

static (double P50, double P99, double Recall) Measure(float[][] query, List<long[]> exact, Func<float[], IReadOnlyList<(long Id, float Similarity)>> search)
{
    search(query[0]); // warm up (the exact path copies the vectors out on first use)
    var times = new List<double>();
    double recall = 0;
    for (int i = 0; i < query.Length; i++)
    {
        var w = Stopwatch.StartNew();
        var found = search(query[i]);
        times.Add(w.Elapsed.TotalMilliseconds);
        recall += found.Count(f => exact[i].Contains(f.Id)) / 10.0;
    }
    return (Percentile(times, 0.50), Percentile(times, 0.99), recall / query.Length);
}

static double Percentile(List<double> values, double p)
{
    var sorted = values.Order().ToList();
    return sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];
}

/// <summary>
/// Synthetic unit vectors. random: isotropic Gaussian (worst case for any ANN: all neighbours nearly equidistant).
/// clustered: 200 centres with isotropic spread. anisotropic: 200 centres, each with its own 24-dim subspace and
/// decaying variance plus a little isotropic noise — closer to sentence embeddings, which have low intrinsic dimension.
/// </summary>
sealed class SyntheticVectors
{
    private readonly string _kind;
    private readonly int _dims;
    private readonly float[][] _centres = [];
    private readonly float[][][] _axes = [];

    public SyntheticVectors(string kind, int dims, Random rng)
    {
        if (kind is not ("random" or "clustered" or "anisotropic")) throw new ArgumentException("random | clustered | anisotropic");
        _kind = kind;
        _dims = dims;
        if (kind == "random") return;
        _centres = Enumerable.Range(0, 200).Select(_ => Gaussian(rng, dims)).ToArray();
        if (kind == "anisotropic")
            _axes = Enumerable.Range(0, 200).Select(_ => Enumerable.Range(0, 24).Select(_ => Gaussian(rng, dims)).ToArray()).ToArray();
    }

    public float[][] Sample(int n, Random rng)
    {
        var result = new float[n][];
        for (int i = 0; i < n; i++)
        {
            float[] v;
            if (_kind == "random") v = Gaussian(rng, _dims);
            else
            {
                int c = rng.Next(_centres.Length);
                v = (float[])_centres[c].Clone();
                if (_kind == "clustered") TensorPrimitives.MultiplyAdd(Gaussian(rng, _dims), 0.35f, v, v);
                else
                {
                    for (int a = 0; a < _axes[c].Length; a++)
                        TensorPrimitives.MultiplyAdd(_axes[c][a], (float)(0.9 / Math.Sqrt(a + 1) * NextGaussian(rng)), v, v);
                    TensorPrimitives.MultiplyAdd(Gaussian(rng, _dims), 0.05f, v, v);
                }
            }
            TensorPrimitives.Divide(v, TensorPrimitives.Norm(v), v);
            result[i] = v;
        }
        return result;
    }

    private static float[] Gaussian(Random rng, int dims)
    {
        var v = new float[dims];
        for (int d = 0; d < dims; d++) v[d] = (float)NextGaussian(rng);
        return v;
    }

    private static double NextGaussian(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}

/// <summary>Embeds queries with a real model and passages as random unit vectors (seeded by the text).</summary>
sealed class RandomPassageEmbedder(string id, IEmbedder queries) : IEmbedder
{
    public string Id => id;
    public string Locator => id;
    public int Dimensions => queries.Dimensions;
    public int MaxTokens => queries.MaxTokens;
    public int CountTokens(string text) => queries.CountTokens(text);

    public float[][] Embed(IReadOnlyList<string> texts, CancellationToken cancellationToken = default) => texts.Select(t =>
    {
        var rng = new Random(t.GetHashCode(StringComparison.Ordinal));
        var v = new float[Dimensions];
        for (int i = 0; i < v.Length; i++) v[i] = (float)(rng.NextDouble() - 0.5);
        TensorPrimitives.Divide(v, TensorPrimitives.Norm(v), v);
        return v;
    }).ToArray();

    public float[] EmbedQuery(string query, CancellationToken cancellationToken = default) => queries.EmbedQuery(query, cancellationToken);

    public void Dispose() { }
}
