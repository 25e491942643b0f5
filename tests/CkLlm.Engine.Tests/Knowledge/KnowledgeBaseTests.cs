using CkLlm.Engine.Knowledge;

namespace CkLlm.Engine.Tests.Knowledge;

public class KnowledgeBaseTests
{
    private const string Markdown = """
        # Garden guide

        Intro line about the garden.

        ## Tomatoes

        Tomatoes need full sun and deep watering twice a week.
        Stake the plants when they reach knee height.

        ## Bees

        Bees pollinate the flowers; plant lavender to attract them.
        """;

    [Fact]
    public void AddMarkdownThenHybridSearchFindsSectionWithHeadingAndLines()
    {
        using var dir = new KnowledgeTestDirectory();
        var file = dir.Write("garden.md", Markdown);
        using (var kb = KnowledgeBase.Open(dir.Kb))
        {
            var result = kb.AddFile(file);
            Assert.Equal(IngestStatus.Added, result.Status);
            Assert.Equal(3, result.Chunks);
            var hits = kb.Search("how often should I water tomato plants");
            Assert.NotEmpty(hits);
            var top = hits[0];
            Assert.Equal(file, top.Source);
            Assert.Equal("Garden guide > Tomatoes", top.Heading);
            Assert.Equal(5, top.LineStart);
            Assert.Equal(8, top.LineEnd);
            Assert.Contains("deep watering", top.Text);
            Assert.Equal(IngestStatus.Skipped, kb.AddFile(file).Status);
        }
        // Reopen: the saved index is current, nothing is rebuilt.
        using (var kb = KnowledgeBase.Open(dir.Kb))
        {
            Assert.Null(kb.IndexRebuildReason);
            Assert.Equal("Garden guide > Bees", kb.Search("pollinating insects", new SearchOptions { Mode = SearchMode.Vector })[0].Heading);
        }
    }
}
