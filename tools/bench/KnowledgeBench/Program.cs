using System.Diagnostics;
using System.Globalization;
using System.Numerics.Tensors;
using System.Text.Json;
using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Knowledge.Embedding;
using CkLlm.Engine.Knowledge.Storage;

// Usage:
//   KnowledgeBench retrieval <corpusDir> <questions.csv> <workDir> <out.json>
//   KnowledgeBench hnsw <count> <random|clustered> <out.json> [queries]
//   KnowledgeBench eval <corpusDir> <kbDir> <embedder> <out.json> <dev.csv> <test.csv> [tune]
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
var mode = args[0];
object result = mode switch
{
    "retrieval" => Retrieval(args[1], args[2], args[3]),
    "ingest" => Ingest(args[1], args[2], args.Length > 4 ? int.Parse(args[4]) : int.MaxValue),
    "hnsw" => Hnsw(int.Parse(args[1]), args[2], args.Length > 4 ? int.Parse(args[4]) : 200),
    "eval" => EvalSet.Run(args[1], args[2], args[3], args[5], args[6], args.Length > 7 && args[7] == "tune"),
    _ => throw new ArgumentException("mode: retrieval | hnsw"),
};
var outPath = mode is "hnsw" or "ingest" ? args[3] : args[4];
File.WriteAllText(outPath, JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
Console.WriteLine(File.ReadAllText(outPath));

static object Retrieval(string corpus, string questionsCsv, string work)
{
    if (Directory.Exists(work)) Directory.Delete(work, true);
    var files = Directory.GetFiles(corpus, "*.txt").Order(StringComparer.Ordinal).ToArray();
    var total = Stopwatch.StartNew();
    int chunks = 0;
    using var kb = KnowledgeBase.Open(work);
    _ = kb.Search("warm up"); // load the embedder before timing
    total.Restart();
    foreach (var f in files) chunks += kb.AddFile(f).Chunks;
    kb.Flush();
    var ingestSeconds = total.Elapsed.TotalSeconds;

    var questions = File.ReadAllLines(questionsCsv).Skip(1).Where(l => l.Contains(','))
        .Select(l => { var i = l.LastIndexOf(','); return (Q: l[..i].Trim('"'), Page: l[(i + 1)..].Trim()); }).ToList();
    var modes = new Dictionary<string, object>();
    var latencies = new Dictionary<string, double>();
    foreach (var m in new[] { SearchMode.Keyword, SearchMode.Vector, SearchMode.Hybrid })
    {
        int hit1 = 0, hit5 = 0; double mrr = 0;
        var misses = new List<string>();
        var watch = Stopwatch.StartNew();
        foreach (var (q, page) in questions)
        {
            var hits = kb.Search(q, new SearchOptions { Mode = m, Top = 10, MaxPerSource = 1 });
            int rank = hits.ToList().FindIndex(h => Path.GetFileNameWithoutExtension(h.Source) == page) + 1;
            if (rank == 1) hit1++;
            if (rank is >= 1 and <= 5) hit5++;
            if (rank >= 1) mrr += 1.0 / rank;
            if (rank != 1) misses.Add($"{q} -> {page} (rank {rank}, top {(hits.Count > 0 ? Path.GetFileNameWithoutExtension(hits[0].Source) : "-")})");
        }
        latencies[m.ToString()] = watch.Elapsed.TotalMilliseconds / questions.Count;
        modes[m.ToString()] = new
        {
            Hit1 = Math.Round((double)hit1 / questions.Count, 3),
            Hit5 = Math.Round((double)hit5 / questions.Count, 3),
            Mrr10 = Math.Round(mrr / questions.Count, 3),
            MeanQueryMs = Math.Round(latencies[m.ToString()], 1),
            Misses = misses,
        };
    }
    return new
    {
        Pages = files.Length,
        Questions = questions.Count,
        Chunks = chunks,
        IngestSeconds = Math.Round(ingestSeconds, 1),
        Modes = modes,
    };
}

// Ingest speed against the raw encoder on the same chunks. The machine is shared, so the two are interleaved in
// rounds (ingest a slice of files, then encode exactly the chunks that slice produced) to keep load drift from
// favouring either side.
static object Ingest(string corpus, string work, int maxFiles)
{
    if (Directory.Exists(work)) Directory.Delete(work, true);
    var files = Directory.GetFiles(corpus, "*.txt").Order(StringComparer.Ordinal).Take(maxFiles).ToArray();
    using var kb = KnowledgeBase.Open(work);
    var embedder = new MiniLmEmbedder();
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
        var texts = ReadEmbeddingTexts(db).Skip(seen).ToList();
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
        Files = files.Length,
        Chunks = chunks,
        IngestSeconds = Math.Round(ingestSeconds, 1),
        IngestChunksPerSecond = Math.Round(chunks / ingestSeconds, 2),
        RawEncoderChunksPerSecond = Math.Round(rawChunks / rawSeconds, 2),
        Ratio = Math.Round(chunks / ingestSeconds / (rawChunks / rawSeconds), 3),
    };
}

static List<string> ReadEmbeddingTexts(string db)
{
    using var conn = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={db};Mode=ReadOnly");
    conn.Open();
    using var cmd = conn.CreateCommand();
    cmd.CommandText = "SELECT heading, text FROM chunks ORDER BY id";
    using var r = cmd.ExecuteReader();
    var list = new List<string>();
    while (r.Read())
    {
        var heading = r.IsDBNull(0) ? null : r.GetString(0);
        var text = r.GetString(1);
        list.Add(heading is null || text.Contains(heading) ? text : heading + "\n" + text);
    }
    return list;
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

static (double P50, double P99, double Recall) Measure(float[][] query, List<long[]> exact, Func<float[], List<(long Id, float Similarity)>> search)
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
