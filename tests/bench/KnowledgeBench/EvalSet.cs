using System.Diagnostics;
using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Rag;

/// <summary>
/// One blind evaluation set (tests/eval/&lt;set&gt;/questions.csv: Question, ExpectedSource, kind, split): ingests its corpus (unchanged files are skipped, so a kept knowledge base is only
/// searched again), then ranks every dev and test question per mode, per document (one hit per source), with the
/// engine's default search options. With "tune", also tries fusion settings on the dev half only and reports each
/// setting's dev and test numbers (the test numbers are for the report, never for choosing).
/// </summary>
static class EvalSet
{
    /// <param name="perSplit">Questions per half (0 = all), the first by SHA-256 of their text: a content-blind sample.</param>
    /// <param name="distractors">Corpus files beyond the sampled questions' expected ones, the first in name order
    /// (-1 = the whole corpus). Embedding is the slow part; a bounded corpus keeps a run within minutes.</param>
    /// <param name="chunkSize">0: the default chunk size (a knowledge base built with another keeps its chunks).</param>
    public static object Run(string corpus, string kbDir, string embedder, string questionsCsv, int perSplit, int distractors, bool tune, int chunkSize = 0)
    {
        var all = Questions.Read(questionsCsv);
        List<Question> Sample(string split)
        {
            var half = all.Where(q => q.Split == split).OrderBy(q => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(q.Text))), StringComparer.Ordinal);
            return (perSplit > 0 ? half.Take(perSplit) : half).ToList();
        }
        var devSample = Sample("dev");
        var testSample = Sample("test");
        var corpusFiles = Directory.GetFiles(corpus, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToArray();
        var expected = devSample.Concat(testSample).SelectMany(q => q.Expected).ToHashSet(StringComparer.Ordinal);
        var files = distractors < 0 ? corpusFiles
            : corpusFiles.Where(f => expected.Any(e => RetrievalMetrics.SourceMatches(f, e))).Union(corpusFiles.Take(distractors)).Order(StringComparer.Ordinal).ToArray();
        var kbOptions = new KnowledgeBaseOptions { Embedder = embedder };
        if (chunkSize > 0) kbOptions.ChunkSize = chunkSize;
        using var kb = KnowledgeBase.Open(kbDir, kbOptions);
        var watch = Stopwatch.StartNew();
        int added = 0, chunks = 0;
        foreach (var f in files)
        {
            try
            {
                var r = kb.AddFile(f);
                chunks += r.Chunks;
                if (r.Status != IngestStatus.Skipped) added++;
                if (added > 0 && added % 50 == 0 && r.Status != IngestStatus.Skipped) Console.Error.WriteLine($"  {added} files embedded, {watch.Elapsed.TotalSeconds:F0} s");
            }
            catch (UnreadableDocumentException e) { Console.Error.WriteLine("  skipped: " + e.Message); }
        }
        kb.Flush();
        var ingestSeconds = watch.Elapsed.TotalSeconds;

        var dev = devSample.Select(q => q with { Vector = kb.EmbedQuery(q.Text) }).ToList();
        var test = testSample.Select(q => q with { Vector = kb.EmbedQuery(q.Text) }).ToList();
        var modes = new Dictionary<string, object>();
        foreach (var mode in new[] { SearchMode.Keyword, SearchMode.Vector, SearchMode.Hybrid })
        {
            var options = new SearchOptions { Mode = mode };
            modes[mode.ToString()] = new { Dev = Score(kb, dev, options), Test = Score(kb, test, options) };
            Console.Error.WriteLine($"  {mode} done");
        }
        List<object>? tuning = null;
        if (tune)
        {
            tuning = [];
            foreach (var options in Grid())
            {
                var devScore = Score(kb, dev, options);
                tuning.Add(new { Options = Describe(options), Dev = devScore, Test = Score(kb, test, options) });
                Console.Error.WriteLine($"  {Describe(options)}: dev hit@5 {devScore.Hit5} MRR {devScore.Mrr10}");
            }
        }
        return new
        {
            Corpus = Path.GetFileName(corpus.TrimEnd('/')),
            Embedder = kb.Embedder,
            kb.GetStatistics().EmbeddingText,
            ChunkSize = kbOptions.ChunkSize,
            Files = files.Length,
            CorpusFiles = corpusFiles.Length,
            Chunks = kb.GetStatistics().Chunks,
            FilesEmbedded = added,
            IngestSeconds = Math.Round(ingestSeconds, 1),
            DevQuestions = dev.Count,
            TestQuestions = test.Count,
            Modes = modes,
            Tuning = tuning,
        };
    }

    /// <summary>
    /// Writes what fusion works from, per question of both halves: the query vector and the keyword candidates (chunk,
    /// source, BM25 with the default column weights), so fusion rules can be explored offline against the knowledge base's
    /// stored chunk vectors without embedding again. Exploration only: choices are still made on the dev half.
    /// </summary>
    public static object Dump(string kbDir, string embedder, string questionsCsv)
    {
        using var kb = KnowledgeBase.Open(kbDir, new KnowledgeBaseOptions { Embedder = embedder });
        var keyword = new SearchOptions { Mode = SearchMode.Keyword, Top = 300, Candidates = 300, MaxPerSource = 0 };
        return Questions.Read(questionsCsv).Select(q => new
        {
            q.Text, q.Split, q.Expected,
            Vector = kb.EmbedQuery(q.Text),
            Keyword = kb.Search(q.Text, null, keyword).Select(h => new[] { h.ChunkId, h.SourceId, h.Score }).ToArray(),
        }).ToList();
    }

    /// <summary>hit@1, hit@5, MRR@10 over the answerable questions (documents ranked, one hit per source), and for the
    /// unanswerable ones the top hit's score (what -MinScore would have to be above).</summary>
    static Metrics Score(KnowledgeBase kb, List<Question> questions, SearchOptions template)
    {
        int hit1 = 0, hit5 = 0, answerable = 0;
        double mrr = 0;
        var times = new List<double>();
        foreach (var q in questions)
        {
            var options = Clone(template);
            options.Top = 10;
            options.MaxPerSource = 1;
            var w = Stopwatch.StartNew();
            var hits = kb.Search(q.Text, q.Vector, options);
            times.Add(w.Elapsed.TotalMilliseconds);
            if (q.Expected.Count == 0) continue;
            answerable++;
            int rank = hits.ToList().FindIndex(h => q.Expected.Any(e => RetrievalMetrics.SourceMatches(h.Source, e))) + 1;
            if (rank == 1) hit1++;
            if (rank is >= 1 and <= 5) hit5++;
            if (rank >= 1) mrr += 1.0 / rank;
        }
        double n = Math.Max(1, answerable);
        return new Metrics(answerable, Math.Round(hit1 / n, 3), Math.Round(hit5 / n, 3), Math.Round(mrr / n, 3),
            Math.Round(times.Count == 0 ? 0 : times.Order().ElementAt(times.Count / 2), 2));
    }

    /// <summary>Fusion settings tried on the dev halves: the fusion rule and weight, the share of the whole document's
    /// vector, the relative BM25 cutoff, the BM25 column weights and the candidate depth (bounded: each setting searches every question again).</summary>
    static IEnumerable<SearchOptions> Grid()
    {
        foreach (var kw in new[] { KeywordWeights.Default, new KeywordWeights(1, 1, 1) })
        {
            foreach (var wv in new[] { 0.5, 0.7, 0.8, 0.9, 0.95 })
            foreach (var whole in new[] { 0.0, 0.35, 0.5 })
                yield return new SearchOptions { Fusion = FusionMethod.Score, VectorWeight = wv, DocumentWeight = whole, KeywordWeights = kw };
            yield return new SearchOptions { Fusion = FusionMethod.Score, KeywordCutoff = 0.3, KeywordWeights = kw };
            foreach (var wv in new[] { 0.5, 0.7, 0.9 })
                yield return new SearchOptions { Fusion = FusionMethod.Rrf, VectorWeight = wv, RrfK = 60, KeywordWeights = kw };
        }
        foreach (var candidates in new[] { 30, 120 })
            yield return new SearchOptions { Candidates = candidates };
    }

    static string Describe(SearchOptions o) =>
        $"{o.Fusion} wv={o.VectorWeight} doc={o.DocumentWeight} cut={o.KeywordCutoff} k={o.RrfK} cand={o.Candidates} bm25=({o.KeywordWeights.Title},{o.KeywordWeights.Headings},{o.KeywordWeights.Body})";

    static SearchOptions Clone(SearchOptions o) => new()
    {
        Mode = o.Mode, Fusion = o.Fusion, VectorWeight = o.VectorWeight, DocumentWeight = o.DocumentWeight, KeywordCutoff = o.KeywordCutoff, RrfK = o.RrfK,
        Candidates = o.Candidates, KeywordWeights = o.KeywordWeights,
    };

    record Metrics(int Questions, double Hit1, double Hit5, double Mrr10, double P50Ms);
}

/// <summary>A question and its expected sources (none: the corpus has no answer).</summary>
record Question(string Text, IReadOnlyList<string> Expected, string Split, float[]? Vector = null)
{
}

static class Questions
{
    /// <summary>CSV with Question, ExpectedSource (separated by ';' or '|'; empty = no answer) and split (dev/test) columns.</summary>
    public static List<Question> Read(string csv)
    {
        var rows = Csv.Parse(File.ReadAllText(csv));
        var header = rows[0].Select(h => h.Trim()).ToList();
        int qi = header.FindIndex(h => h.Equals("Question", StringComparison.OrdinalIgnoreCase));
        int ei = header.FindIndex(h => h.Equals("ExpectedSource", StringComparison.OrdinalIgnoreCase));
        int si = header.FindIndex(h => h.Equals("split", StringComparison.OrdinalIgnoreCase));
        if (qi < 0 || ei < 0 || si < 0) throw new InvalidDataException($"{csv}: needs Question, ExpectedSource and split columns (has {string.Join(",", header)}).");
        return rows.Skip(1).Where(r => r.Count > si && !string.IsNullOrWhiteSpace(r[qi]))
            .Select(r => new Question(r[qi], r[ei].Split([';', '|'], StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries), r[si].Trim().ToLowerInvariant()))
            .ToList();
    }
}

static class Csv
{
    /// <summary>RFC 4180: quoted fields with doubled quotes and embedded newlines.</summary>
    public static List<List<string>> Parse(string text)
    {
        var rows = new List<List<string>>();
        var row = new List<string>();
        var field = new System.Text.StringBuilder();
        bool quoted = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else field.Append(c);
            }
            else if (c == '"') quoted = true;
            else if (c == ',') { row.Add(field.ToString()); field.Clear(); }
            else if (c == '\n' || c == '\r')
            {
                if (c == '\r' && i + 1 < text.Length && text[i + 1] == '\n') i++;
                row.Add(field.ToString()); field.Clear();
                if (row.Count > 1 || row[0].Length > 0) rows.Add(row);
                row = [];
            }
            else field.Append(c);
        }
        if (field.Length > 0 || row.Count > 0) { row.Add(field.ToString()); rows.Add(row); }
        return rows;
    }
}
