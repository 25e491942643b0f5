using CkLlm.Engine.Inference;
using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Serving.Mcp;
using CkLlm.Engine.Session;
using CkLlm.Engine.Tests.Rag;
using ModelContextProtocol;

namespace CkLlm.Engine.Tests.Serving;

/// <summary>Two small knowledge bases (exact in-memory vectors) with fixture documents: geology and kitchen.</summary>
public sealed class McpKnowledgeFixture : IDisposable
{
    public McpKnowledgeFixture()
    {
        Root = Directory.CreateTempSubdirectory("ckllm-mcp-tests-").FullName;
        var options = new KnowledgeBaseOptions { VectorIndexFactory = CkLlm.Engine.Knowledge.Storage.InMemoryVectorIndex.Create };
        Geology = KnowledgeBase.Open(Path.Combine(Root, "geology"), options);
        Geology.AddFile(Write("volcano.md", "# Volcanoes\n\n## Kilauea\n\nKilauea is a shield volcano on the island of Hawaii.\nIt has erupted almost continuously since 1983.\n"));
        Geology.AddFile(Write("glacier.md", "# Glaciers\n\nGlaciers carve valleys and leave moraines of rock behind them.\n"));
        Geology.AddText("Basalt is a volcanic rock formed from lava that cools quickly.", "basalt-note",
            new Dictionary<string, string> { ["lang"] = "en" });
        Kitchen = KnowledgeBase.Open(Path.Combine(Root, "nested", "kitchen"), options);
        Kitchen.AddFile(Write("bread.md", "# Baking\n\n## Sourdough\n\nSourdough bread rises with a starter of wild yeast and lactobacilli.\n"));
    }

    public string Root { get; }
    public KnowledgeBase Geology { get; }
    public KnowledgeBase Kitchen { get; }

    public KnowledgeTools Tools(Func<IChatModel> model) => new(KnowledgeTools.NameKnowledgeBases([Geology, Kitchen]), model);

    private string Write(string name, string text)
    {
        var path = Path.Combine(Root, "docs", name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        return path;
    }

    public void Dispose()
    {
        Geology.Dispose();
        Kitchen.Dispose();
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}

public class McpKnowledgeToolsTests(McpKnowledgeFixture fixture) : IClassFixture<McpKnowledgeFixture>
{
    private static IChatModel NoModel() => throw new ModelNotLoadedException(CkSession.NoModelMessage);

    [Fact]
    public void KnowledgeBasesAreNamedByTheirDirectoryAndMadeUnique()
    {
        var names = KnowledgeTools.NameKnowledgeBases([fixture.Geology, fixture.Kitchen, fixture.Geology]).Select(k => k.Name);
        Assert.Equal(["geology", "kitchen", "geology-2"], names);
    }

    [Fact]
    public void SearchRanksHitsFromEveryServedKnowledgeBaseTogether()
    {
        var result = fixture.Tools(NoModel).Search("sourdough starter yeast volcano Hawaii", top: 10);
        Assert.Equal(Enumerable.Range(1, result.Hits.Count), result.Hits.Select(h => h.Rank));
        Assert.Equal(result.Hits.Select(h => h.Score).OrderByDescending(s => s), result.Hits.Select(h => h.Score));
        Assert.Contains(result.Hits, h => h.KnowledgeBase == "kitchen" && h.Source.EndsWith("bread.md", StringComparison.Ordinal));
        var volcano = Assert.Single(result.Hits, h => h.Source.EndsWith("volcano.md", StringComparison.Ordinal));
        Assert.Equal("geology", volcano.KnowledgeBase);
        Assert.Contains("Kilauea is a shield volcano", volcano.Text);
        Assert.Equal("Volcanoes > Kilauea", volcano.Heading);
        var lines = volcano.Lines!.Split('-').Select(int.Parse).ToArray();
        var file = File.ReadAllLines(volcano.Source);
        Assert.Contains("Kilauea is a shield volcano", string.Join("\n", file[(lines[0] - 1)..lines[^1]]));
    }

    [Fact]
    public void SearchHonoursTopTheNamedKnowledgeBaseAndTheFilter()
    {
        var tools = fixture.Tools(NoModel);
        Assert.Single(tools.Search("volcano", top: 1).Hits);
        Assert.All(tools.Search("bread volcano glacier", top: 10, knowledgeBase: "KITCHEN").Hits, h => Assert.Equal("kitchen", h.KnowledgeBase));
        var filtered = tools.Search("volcanic rock lava", top: 10, filter: new Dictionary<string, string> { ["lang"] = "en" }).Hits;
        var hit = Assert.Single(filtered);
        Assert.Equal("basalt-note", hit.Source);
        Assert.Equal("en", hit.Metadata!["lang"]);
    }

    [Theory]
    [InlineData("", 5, null, "query must not be empty.")]
    [InlineData("volcano", 0, null, "top must be between 1 and 50; got 0.")]
    [InlineData("volcano", 51, null, "top must be between 1 and 50; got 51.")]
    [InlineData("volcano", 5, "attic", "No knowledge base named 'attic' is served. Served: geology, kitchen.")]
    public void BadSearchArgumentsAreToolErrorsThatSayWhatIsWrong(string query, int top, string? knowledgeBase, string message)
    {
        var error = Assert.Throws<McpException>(() => fixture.Tools(NoModel).Search(query, top, knowledgeBase: knowledgeBase));
        Assert.Equal(message, error.Message);
    }

    [Fact]
    public void AskAnswersWithTheModelAndMarksWhichCitationsTheAnswerUses()
    {
        var model = new FakeGenerator(4096, "Kilauea [2] erupts [7].");
        var result = fixture.Tools(() => model).Ask("Which volcano is on Hawaii? sourdough", top: 3, temperature: 0);
        Assert.Equal("Kilauea [2] erupts [7].", result.Answer);
        Assert.False(result.NoKnowledge);
        Assert.Equal("fake", result.Model);
        Assert.Equal([7], result.UnknownCitations);
        Assert.Equal(nameof(FinishReason.Stop), result.FinishReason);
        Assert.Equal(Enumerable.Range(1, result.Citations.Count), result.Citations.Select(c => c.Number));
        Assert.Equal([2], result.Citations.Where(c => c.Cited).Select(c => c.Number));
        Assert.Contains(result.Citations, c => c.Source.EndsWith("volcano.md", StringComparison.Ordinal) && c.Heading == "Volcanoes > Kilauea");
        // The passages the model saw come from both knowledge bases, and the sampling asked for reached it.
        Assert.Contains("Sourdough bread rises", model.LastRequest!.Prompt);
        Assert.Contains("Kilauea is a shield volcano", model.LastRequest.Prompt);
        Assert.Equal(0, model.LastRequest.Temperature);
    }

    [Fact]
    public void WithoutKnowledgeBasesSearchAndAskSaySoAndTheListIsEmpty()
    {
        var tools = new KnowledgeTools([], () => new FakeGenerator(4096));
        Assert.Equal(KnowledgeTools.NoKnowledgeBaseMessage, Assert.Throws<McpException>(() => tools.Search("volcano")).Message);
        Assert.Equal(KnowledgeTools.NoKnowledgeBaseMessage, Assert.Throws<McpException>(() => tools.Ask("volcano?")).Message);
        Assert.Empty(tools.ListSources().KnowledgeBases);
    }

    [Fact]
    public void AskWithoutAModelIsAToolErrorThatSaysHowToStartTheServerWithOne()
    {
        var error = Assert.Throws<McpException>(() => fixture.Tools(NoModel).Ask("Which volcano?"));
        Assert.Equal(KnowledgeTools.NoModelMessage, error.Message);
        Assert.Contains("-Model", error.Message);
    }

    [Fact]
    public void AQuestionTheContextCannotHoldIsAToolErrorWithTheEnginesReason()
    {
        var error = Assert.Throws<McpException>(() => fixture.Tools(() => new FakeGenerator(40)).Ask("Which volcano is on Hawaii?"));
        Assert.IsType<CkLlm.Engine.Rag.RagBudgetException>(error.InnerException);
        Assert.Equal(error.InnerException.Message, error.Message);
    }

    [Theory]
    [InlineData(0, 5, "maxTokens must be between 1 and 4096; got 0.")]
    [InlineData(5000, 5, "maxTokens must be between 1 and 4096; got 5000.")]
    [InlineData(16, -1, "temperature must be between 0 and 100.")]
    public void BadAskArgumentsAreToolErrorsAndTheModelIsNotCalled(int maxTokens, float temperature, string message)
    {
        var model = new FakeGenerator(4096);
        var error = Assert.Throws<McpException>(() => fixture.Tools(() => model).Ask("volcano?", maxTokens: maxTokens, temperature: temperature));
        Assert.Equal(message, error.Message);
        Assert.Equal(0, model.Calls);
    }

    [Fact]
    public void ListSourcesGivesEachKnowledgeBaseWithItsSourcesAndTruncatesAtTheLimit()
    {
        var tools = fixture.Tools(NoModel);
        var all = tools.ListSources();
        Assert.Equal(["geology", "kitchen"], all.KnowledgeBases.Select(k => k.Name));
        var geology = all.KnowledgeBases[0];
        Assert.Equal(fixture.Geology.Directory, geology.Directory);
        Assert.Equal(3, geology.SourceCount);
        Assert.False(geology.Truncated);
        Assert.Equal(fixture.Geology.GetSources().Select(s => s.Source).Order(), geology.Sources.Select(s => s.Source).Order());
        Assert.Equal(fixture.Geology.GetStatistics().Chunks, geology.Chunks);
        Assert.Contains(geology.Sources, s => s.Source == "basalt-note" && s.Kind == "Text");

        var limited = Assert.Single(tools.ListSources("geology", limit: 2).KnowledgeBases);
        Assert.True(limited.Truncated);
        Assert.Equal(2, limited.Sources.Count);
        Assert.Equal(3, limited.SourceCount);
    }
}
