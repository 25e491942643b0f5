using CkLlm.Engine.Rag;

namespace CkLlm.Engine.Tests.Rag;

public class RetrievalMetricsTests
{
    [Theory]
    [InlineData("/usr/share/man/man1/ls.1", "/usr/share/man/man1/ls.1", true)]
    [InlineData("/usr/share/man/man1/ls.1", "ls.1", true)]
    [InlineData("/usr/share/man/man1/ls.1", "LS.1", true)]
    [InlineData("/usr/share/man/man1/ls.1", "man1/ls.1", true)]
    [InlineData("/usr/share/man/man1/ls.1", "./man1/ls.1", true)]
    [InlineData(@"C:\docs\guide.md", "docs/guide.md", true)]
    [InlineData("/usr/share/man/man1/als.1", "ls.1", false)]
    [InlineData("/usr/share/man/man1/ls.1", "an1/ls.1", false)]
    [InlineData("/usr/share/man/man1/ls.1", "man8/ls.1", false)]
    [InlineData("/docs/.bashrc", ".bashrc", true)]
    [InlineData("/usr/share/man/man1/ls.1", "man1/", false)]
    [InlineData("/usr/share/man/man1/ls.1", "", false)]
    public void SourceMatchingRules(string actual, string expected, bool matches) =>
        Assert.Equal(matches, RetrievalMetrics.SourceMatches(actual, expected));

    [Fact]
    public void RankIsThePositionOfTheFirstMatchingHitWithinK()
    {
        var @case = RetrievalCase.Create("q", "b.md");
        Assert.Equal(2, RetrievalMetrics.Rank(@case, "Hybrid", 5, ["/x/a.md", "/x/b.md", "/x/b.md"]).Rank);
        Assert.Null(RetrievalMetrics.Rank(@case, "Hybrid", 1, ["/x/a.md", "/x/b.md"]).Rank);
        var rank = RetrievalMetrics.Rank(@case, "Keyword", 3, ["/x/a.md"]);
        Assert.False(rank.Found);
        Assert.Equal("/x/a.md", rank.TopSource);
    }

    [Fact]
    public void AlternativeExpectedSourcesAnyMatch()
    {
        var @case = RetrievalCase.Create("q", "c.md; b.md|z.md");
        Assert.Equal(3, @case.ExpectedSources.Count);
        Assert.Equal(2, RetrievalMetrics.Rank(@case, "Hybrid", 5, ["/a.md", "/b.md"]).Rank);
    }

    [Fact]
    public void SummaryComputesHitAt1HitAtKAndMrr()
    {
        var ranks = new[] { 1, 2, (int?)null, 4 }.Select((r, i) => new RetrievalRank { Question = $"q{i}", ExpectedSource = "x", Mode = "Vector", K = 5, Rank = r, SearchMs = 2 }).ToArray();
        var summary = RetrievalMetrics.Summarize("Vector", 5, ranks);
        Assert.Equal(4, summary.Questions);
        Assert.Equal(0.25, summary.HitAt1, 10);
        Assert.Equal(0.75, summary.HitAtK, 10);
        Assert.Equal((1 + 0.5 + 0 + 0.25) / 4, summary.MrrAtK, 10);
        Assert.Equal(2, summary.MeanSearchMs, 10);
    }

    [Fact]
    public void EvaluateRunsEveryModeOverEveryCase()
    {
        var cases = new[] { RetrievalCase.Create("alpha?", "a.md"), RetrievalCase.Create("beta?", "b.md") };
        var calls = new List<(string, string, int)>();
        IReadOnlyList<string> Search(string q, string mode, int k)
        {
            calls.Add((q, mode, k));
            return mode == "Keyword" ? (q.StartsWith("alpha", StringComparison.Ordinal) ? ["/d/a.md"] : ["/d/a.md", "/d/b.md"]) : ["/d/c.md"];
        }
        var summaries = RetrievalMetrics.Evaluate(cases, ["Keyword", "Vector"], 3, Search);
        Assert.Equal(4, calls.Count);
        Assert.All(calls, c => Assert.Equal(3, c.Item3));
        var keyword = summaries[0];
        Assert.Equal("Keyword", keyword.Mode);
        Assert.Equal(0.5, keyword.HitAt1);
        Assert.Equal(1.0, keyword.HitAtK);
        Assert.Equal(0.75, keyword.MrrAtK);
        Assert.Equal([1, 2], keyword.Ranks.Select(r => r.Rank!.Value));
        Assert.Equal(0, summaries[1].HitAtK);
    }

    [Fact]
    public void BadInputIsRejected()
    {
        Assert.Throws<ArgumentException>(() => RetrievalCase.Create("q", " ; "));
        Assert.Throws<ArgumentException>(() => RetrievalCase.Create(" ", "a.md"));
        Assert.Throws<ArgumentException>(() => RetrievalMetrics.Evaluate([], ["Hybrid"], 5, (_, _, _) => []));
        Assert.Throws<ArgumentOutOfRangeException>(() => RetrievalMetrics.Rank(RetrievalCase.Create("q", "a"), "Hybrid", 0, []));
    }
}
