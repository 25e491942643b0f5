using CkLlm.Engine.Inference;
using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Model;
using CkLlm.Engine.Rag;
using CkLlm.Engine.Tests.Model;

namespace CkLlm.Engine.Tests.Rag;

/// <summary>A small knowledge base of fixture documents and a generated Tiny model with a chat template.</summary>
public sealed class RagFixture : IDisposable
{
    private readonly TestModels _models = new();

    public RagFixture()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("ckllm-rag-tests-").FullName;
        var docs = System.IO.Path.Combine(Directory, "docs");
        System.IO.Directory.CreateDirectory(docs);
        Write(docs, "volcano.md", "# Volcanoes\n\n## Kilauea\n\nKilauea is a shield volcano on the island of Hawaii.\nIt has erupted almost continuously since 1983.\n");
        Write(docs, "bread.md", "# Baking\n\n## Sourdough\n\nSourdough bread rises with a starter of wild yeast and lactobacilli.\nFeed the starter with flour and water every day.\n");
        Write(docs, "long.md", "# Long notes\n\n" + string.Join("\n", Enumerable.Range(1, 400).Select(i => $"Line {i} talks about glaciers, moraines and the slow flow of ice in valley number {i}.")) + "\n");
        KnowledgeBase = KnowledgeBase.Open(System.IO.Path.Combine(Directory, "kb"));
        foreach (var file in System.IO.Directory.GetFiles(docs)) KnowledgeBase.AddFile(file);
        Model = LoadedModel.Load(_models.WithTemplate, new ModelLoadOptions { ContextSize = 1024, Threads = 2 });
        PlainModel = LoadedModel.Load(_models.Plain, new ModelLoadOptions { ContextSize = 1024, Threads = 2 });
    }

    /// <summary>No chat template: RAG uses the documented ChatML-like fallback.</summary>
    public LoadedModel PlainModel { get; }

    public string Directory { get; }
    public KnowledgeBase KnowledgeBase { get; }
    public LoadedModel Model { get; }

    private static void Write(string folder, string name, string text) => File.WriteAllText(System.IO.Path.Combine(folder, name), text);

    public void Dispose()
    {
        Model.Dispose();
        PlainModel.Dispose();
        KnowledgeBase.Dispose();
        _models.Dispose();
        try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { }
    }
}

public class RagEndToEndTests(RagFixture fixture) : IClassFixture<RagFixture>
{
    private RagAnswer Ask(string question, int maxTokens = 16, int top = 3, string mode = "Hybrid", double minScore = 0, string? grammar = null) =>
        RagEngine.Answer(new RagRequest
        {
            Question = question, Top = top, Mode = mode, MinScore = minScore,
            Generation = new CompletionRequest { MaxTokens = maxTokens, Temperature = 0, Grammar = grammar },
        }, new KnowledgeRagRetriever(fixture.KnowledgeBase), fixture.Model);

    [Fact]
    public void CitationsMapToRealSourcesAndLineRanges()
    {
        var answer = Ask("Which volcano on Hawaii erupted since 1983?", mode: "Keyword");
        Assert.False(answer.NoKnowledge);
        Assert.Equal("template", answer.ChatFormat);
        var first = answer.Citations[0];
        Assert.EndsWith("volcano.md", first.Source);
        Assert.NotNull(first.LineStart);
        var fileLines = File.ReadAllLines(first.Source);
        var cited = string.Join("\n", fileLines[(first.LineStart!.Value - 1)..first.LineEnd!.Value]);
        Assert.Contains("Kilauea is a shield volcano", cited);
        Assert.Contains("Kilauea is a shield volcano", first.Text);
        Assert.Equal(fixture.Model.Name, answer.Model);
        Assert.True(answer.CompletionTokens > 0);
        Assert.True(answer.GenerationMs > 0);
        // Whatever the random model wrote, every [n] it produced is classified.
        Assert.Equal(CitationParser.Parse(answer.Answer).Count, answer.CitedNumbers.Count + answer.UnknownCitations.Count);
    }

    [Fact]
    public void LongPassagesNeverOverflowTheContextWindow()
    {
        // The budget is reserved for MaxTokens; a short grammar ends generation early so the test stays fast.
        foreach (var maxTokens in new[] { 64, 200, 320 })
        {
            var answer = Ask("How do glaciers and moraines flow in the valley?", maxTokens: maxTokens, top: 5, grammar: "root ::= \"See [1].\"");
            Assert.True(answer.PromptTokens + maxTokens <= fixture.Model.ContextSize, $"{answer.PromptTokens} + {maxTokens} > {fixture.Model.ContextSize}");
            Assert.True(answer.PassagesDropped + answer.PassagesTrimmed > 0, "the long document should not fit whole");
            Assert.NotEqual(FinishReason.Cancelled, answer.FinishReason);
            Assert.NotEmpty(answer.Citations);
            Assert.Equal("See [1].", answer.Answer);
            Assert.Equal([1], answer.CitedNumbers);
            Assert.Empty(answer.UnknownCitations);
        }
    }

    [Fact]
    public void MaxTokensFillingTheWindowIsABudgetError() =>
        Assert.Throws<RagBudgetException>(() => Ask("glaciers?", maxTokens: 1000));

    [Fact]
    public void NoPassageAboveMinScoreSkipsTheModel()
    {
        var answer = Ask("glaciers?", minScore: 1.01);
        Assert.True(answer.NoKnowledge);
        Assert.Equal(0, answer.CompletionTokens);
        Assert.Null(answer.Prompt);
    }

    [Fact]
    public void ModelWithoutChatTemplateGetsTheFallbackFormat()
    {
        var answer = RagEngine.Answer(new RagRequest { Question = "sourdough starter?", PromptOnly = true },
            new KnowledgeRagRetriever(fixture.KnowledgeBase), fixture.PlainModel);
        Assert.Equal("fallback", answer.ChatFormat);
        Assert.StartsWith("<|im_start|>system\n" + RagPromptBuilder.DefaultSystem, answer.Prompt);
        Assert.EndsWith("<|im_start|>assistant\n", answer.Prompt);
        Assert.Null(answer.Answer);
    }

    [Fact]
    public void CancelledBeforeRetrievalThrowsOperationCanceled()
    {
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.Throws<OperationCanceledException>(() => RagEngine.Answer(new RagRequest { Question = "glaciers?" },
            new KnowledgeRagRetriever(fixture.KnowledgeBase), fixture.Model, cancelled.Token));
    }

    [Fact]
    public void CancelledDuringGenerationEndsWithCancelled()
    {
        using var cancellation = new CancellationTokenSource();
        var chunks = 0;
        var answer = RagEngine.Answer(new RagRequest { Question = "glaciers?", Generation = new CompletionRequest { MaxTokens = 200, Temperature = 0 } },
            new KnowledgeRagRetriever(fixture.KnowledgeBase), fixture.Model, cancellation.Token,
            _ => { if (++chunks == 3) cancellation.Cancel(); });
        Assert.Equal(FinishReason.Cancelled, answer.FinishReason);
        Assert.True(answer.CompletionTokens < 200);
    }

    [Fact]
    public void UnknownModeIsRejected() => Assert.Throws<ArgumentException>(() => Ask("glaciers?", mode: "Fuzzy"));

    [Fact]
    public void RetrievalMetricsOnTheFixture()
    {
        var retriever = new KnowledgeRagRetriever(fixture.KnowledgeBase);
        var cases = new[]
        {
            RetrievalCase.Create("Which volcano erupted continuously since 1983?", "volcano.md"),
            RetrievalCase.Create("How is sourdough starter fed with flour and water?", "docs/bread.md"),
        };
        var summaries = RetrievalMetrics.Evaluate(cases, ["Keyword", "Hybrid"], 3, (q, mode, k) => retriever.SearchSources(q, mode, k));
        Assert.All(summaries, s => Assert.Equal(1.0, s.HitAt1));
        Assert.All(summaries, s => Assert.Equal(1.0, s.MrrAtK));
    }
}
