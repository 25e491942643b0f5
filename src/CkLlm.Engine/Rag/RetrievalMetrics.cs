namespace CkLlm.Engine.Rag;

/// <summary>A question and the source(s) that hold its answer.</summary>
public sealed record RetrievalCase(string Question, IReadOnlyList<string> ExpectedSources)
{
    /// <summary>Expected sources given as one string may list alternatives separated by ';' or '|'.</summary>
    public static RetrievalCase Create(string question, string expectedSource)
    {
        if (string.IsNullOrWhiteSpace(question)) throw new ArgumentException("A retrieval case needs a Question.", nameof(question));
        var expected = (expectedSource ?? "").Split([';', '|'], StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (expected.Length == 0) throw new ArgumentException($"The question '{question}' has no ExpectedSource.", nameof(expectedSource));
        return new RetrievalCase(question, expected);
    }
}

/// <summary>Where one question's expected source ranked in one search mode.</summary>
public sealed record RetrievalRank
{
    public required string Question { get; init; }
    public required string ExpectedSource { get; init; }
    public required string Mode { get; init; }
    /// <summary>1-based position of the first hit from an expected source among the top K hits; null if none.</summary>
    public int? Rank { get; init; }
    public required int K { get; init; }
    public string? MatchedSource { get; init; }
    /// <summary>The source of the first hit (what a user would have read).</summary>
    public string? TopSource { get; init; }
    public double SearchMs { get; init; }
    public bool Found => Rank is not null;
}

/// <summary>hit@1, hit@K and MRR@K of one search mode over a question set.</summary>
public sealed record RetrievalSummary
{
    public required string Mode { get; init; }
    public required int K { get; init; }
    public required int Questions { get; init; }
    /// <summary>Fraction of questions whose first hit is from an expected source.</summary>
    public required double HitAt1 { get; init; }
    /// <summary>Fraction of questions with an expected source among the top K hits.</summary>
    public required double HitAtK { get; init; }
    /// <summary>Mean of 1/rank (0 when not in the top K).</summary>
    public required double MrrAtK { get; init; }
    public required double MeanSearchMs { get; init; }
    /// <summary>The per-question ranks behind the numbers.</summary>
    public IReadOnlyList<RetrievalRank> Ranks { get; init; } = [];
}

/// <summary>
/// Retrieval metrics for Measure-CkRetrieval. A hit's source matches an expected source (case-insensitively, with '\'
/// read as '/') when it is the same path, when the expected value is a bare file name equal to the hit's file name,
/// or when the hit's source ends with "/" + the expected value (a path suffix at a folder boundary, e.g.
/// "man1/ls.1" matches "/usr/share/man/man1/ls.1"). Ranks count hits as the search returned them (chunks, so one
/// source may occupy two positions), which is what a RAG prompt built from the top K hits would see.
/// </summary>
public static class RetrievalMetrics
{
    public static bool SourceMatches(string? actual, string? expected)
    {
        if (string.IsNullOrWhiteSpace(actual) || string.IsNullOrWhiteSpace(expected)) return false;
        var a = Normalize(actual);
        var e = Normalize(expected);
        while (e.StartsWith("./", StringComparison.Ordinal)) e = e[2..];
        if (e.Length == 0 || e.EndsWith('/')) return false;
        if (string.Equals(a, e, StringComparison.OrdinalIgnoreCase)) return true;
        if (!e.Contains('/') && string.Equals(a[(a.LastIndexOf('/') + 1)..], e, StringComparison.OrdinalIgnoreCase)) return true;
        return a.EndsWith(e.StartsWith('/') ? e : "/" + e, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Ranks <paramref name="rankedSources"/> (hit sources, best first) against one case.</summary>
    public static RetrievalRank Rank(RetrievalCase @case, string mode, int k, IReadOnlyList<string> rankedSources, double searchMs = 0)
    {
        ArgumentNullException.ThrowIfNull(@case);
        ArgumentNullException.ThrowIfNull(rankedSources);
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), "K must be at least 1.");
        int? rank = null;
        string? matched = null;
        for (var i = 0; i < Math.Min(k, rankedSources.Count); i++)
        {
            if (@case.ExpectedSources.Any(e => SourceMatches(rankedSources[i], e)))
            {
                rank = i + 1;
                matched = rankedSources[i];
                break;
            }
        }
        return new RetrievalRank
        {
            Question = @case.Question,
            ExpectedSource = string.Join("; ", @case.ExpectedSources),
            Mode = mode,
            Rank = rank,
            K = k,
            MatchedSource = matched,
            TopSource = rankedSources.Count > 0 ? rankedSources[0] : null,
            SearchMs = searchMs,
        };
    }

    public static RetrievalSummary Summarize(string mode, int k, IReadOnlyList<RetrievalRank> ranks)
    {
        ArgumentNullException.ThrowIfNull(ranks);
        var n = ranks.Count;
        return new RetrievalSummary
        {
            Mode = mode,
            K = k,
            Questions = n,
            HitAt1 = n == 0 ? 0 : ranks.Count(r => r.Rank == 1) / (double)n,
            HitAtK = n == 0 ? 0 : ranks.Count(r => r.Rank is not null && r.Rank <= k) / (double)n,
            MrrAtK = n == 0 ? 0 : ranks.Sum(r => r.Rank is { } x && x <= k ? 1.0 / x : 0) / n,
            MeanSearchMs = n == 0 ? 0 : ranks.Average(r => r.SearchMs),
            Ranks = ranks,
        };
    }

    /// <summary>Runs every case through <paramref name="search"/> (question, mode, k → hit sources best first) for every mode.</summary>
    public static IReadOnlyList<RetrievalSummary> Evaluate(IReadOnlyList<RetrievalCase> cases, IReadOnlyList<string> modes, int k,
        Func<string, string, int, IReadOnlyList<string>> search, CancellationToken cancellationToken = default, Action<int, int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(cases);
        ArgumentNullException.ThrowIfNull(modes);
        ArgumentNullException.ThrowIfNull(search);
        if (cases.Count == 0) throw new ArgumentException("No question/expected-source pairs were given.", nameof(cases));
        if (modes.Count == 0) throw new ArgumentException("Give at least one search mode.", nameof(modes));
        var summaries = new List<RetrievalSummary>();
        var done = 0;
        foreach (var mode in modes)
        {
            var ranks = new List<RetrievalRank>();
            foreach (var @case in cases)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var clock = System.Diagnostics.Stopwatch.StartNew();
                var sources = search(@case.Question, mode, k);
                clock.Stop();
                ranks.Add(Rank(@case, mode, k, sources, clock.Elapsed.TotalMilliseconds));
                progress?.Invoke(++done, cases.Count * modes.Count);
            }
            summaries.Add(Summarize(mode, k, ranks));
        }
        return summaries;
    }

    private static string Normalize(string path) => path.Trim().Replace('\\', '/');
}
