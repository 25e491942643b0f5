using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Knowledge.Search;
using CkLlm.Engine.Model;
using CkLlm.Engine.Model.Generation;

namespace CkLlm.Engine.Tests.Knowledge;

/// <summary>The optional reranking stage: ordering, the chat-model judge and refusing files that are not rerankers.
/// These prove mechanics on generated models; ranking quality needs a real reranker model.</summary>
public class RerankingTests
{
    private sealed class LengthReranker : IReranker
    {
        public string Name => "length";
        public List<string> Seen { get; } = [];

        public IReadOnlyList<double> Score(string query, IReadOnlyList<string> passages, CancellationToken cancellationToken = default)
        {
            Seen.AddRange(passages);
            return passages.Select(p => (double)p.Length).ToList();
        }
    }

    private static KnowledgeHit Hit(int rank, string text, string? title = null) =>
        new() { Rank = rank, Score = 1.0 / rank, Text = text, Source = "s" + rank, Title = title };

    [Fact]
    public void RerankingOrdersByTheRerankersScoreKeepsTopAndShowsItTheTitle()
    {
        var reranker = new LengthReranker();
        var hits = new[] { Hit(1, "short"), Hit(2, "a much longer passage"), Hit(3, "medium text", title: "Doc") };
        var reranked = Reranking.Rerank(reranker, "q", hits, top: 2);
        Assert.Equal(["s2", "s3"], reranked.Select(h => h.Source));
        Assert.Equal([1, 2], reranked.Select(h => h.Rank));
        Assert.Equal("a much longer passage".Length, reranked[0].Score);
        Assert.Contains("Doc\nmedium text", reranker.Seen);
    }

    [Fact]
    public void AChatModelOrAGarbageFileIsRefusedAsARerankerBeforeLlamaCppSeesIt()
    {
        using var dir = new KnowledgeTestDirectory();
        var chat = Path.Combine(dir.Path, "chat.gguf");
        ModelGenerator.Generate(chat, new ModelGenerationOptions { Preset = ModelPreset.Tiny, Seed = 3, Corpus = "yes no maybe passage question answer" });
        var ex = Assert.Throws<NotARerankerException>(() => new GgufReranker(chat));
        Assert.Contains("pooling", ex.Message);
        Assert.Equal(chat, ex.Path);

        var garbage = dir.Write("garbage.gguf", "this is not a model file at all");
        Assert.Throws<NotARerankerException>(() => new GgufReranker(garbage));
        Assert.Throws<FileNotFoundException>(() => new GgufReranker(Path.Combine(dir.Path, "missing.gguf")));
    }

    [Fact]
    public void TheChatModelJudgeGivesEachPassageAYesProbabilityDeterministically()
    {
        using var dir = new KnowledgeTestDirectory();
        var path = Path.Combine(dir.Path, "judge.gguf");
        ModelGenerator.Generate(path, new ModelGenerationOptions { Preset = ModelPreset.Tiny, Seed = 5, Corpus = "Passage Question Does the passage answer the question yes no Answer" });
        using var model = LoadedModel.Load(path, new ModelLoadOptions { ContextSize = 256 });
        var judge = new ChatModelJudge(model);
        var passages = new[] { "The kettle boils water.", string.Join(" ", Enumerable.Repeat("very long passage", 400)), "" };
        var first = judge.Score("what boils water?", passages);
        var second = judge.Score("what boils water?", passages);
        Assert.Equal(3, first.Count);
        Assert.All(first, s => Assert.InRange(s, 1e-9, 1 - 1e-9));
        Assert.Equal(first, second);
        Assert.Equal("judge:" + model.Name, judge.Name);
    }
}
