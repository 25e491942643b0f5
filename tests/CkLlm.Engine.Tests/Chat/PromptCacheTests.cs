using CkLlm.Engine.Inference;
using CkLlm.Engine.Model;
using CkLlm.Engine.Rag;
using CkLlm.Engine.Tests.Rag;

namespace CkLlm.Engine.Tests.Chat;

/// <summary>The prompt-prefix cache of single calls: what it reuses, that it never changes the text, and its bound.</summary>
public class PromptCacheTests(ChatTestModels models) : IClassFixture<ChatTestModels>
{
    private static CompletionRequest Greedy(string prompt, bool cache = true) =>
        new() { Prompt = prompt, Temperature = 0, MaxTokens = 16, CachePrompt = cache };

    [Fact]
    public void ARepeatedPromptReusesAllButItsLastTokenAndGivesTheSameText()
    {
        var model = models.Plain;
        var fresh = CompletionEngine.Complete(model, Greedy("The harbour wakes before dawn when the boats return", cache: false));
        Assert.Equal(0, fresh.CachedPromptTokens);
        var first = CompletionEngine.Complete(model, Greedy("The harbour wakes before dawn when the boats return"));
        var again = CompletionEngine.Complete(model, Greedy("The harbour wakes before dawn when the boats return"));
        Assert.Equal(fresh.Text, first.Text);
        Assert.Equal(fresh.Text, again.Text);
        Assert.Equal(again.PromptTokens - 1, again.CachedPromptTokens);
    }

    [Fact]
    public void APromptSharingAPrefixEvaluatesOnlyTheRestAndMatchesAFreshContext()
    {
        var model = models.Plain;
        const string prefix = "Gulls circle above the market while traders argue about the price of cod and the weather";
        CompletionEngine.Complete(model, Greedy(prefix + ". Then"));
        var shared = CompletionEngine.Complete(model, Greedy(prefix + " turns cold. Later"));
        var fresh = CompletionEngine.Complete(model, Greedy(prefix + " turns cold. Later", cache: false));
        Assert.True(shared.CachedPromptTokens >= model.CountTokens(prefix) - 2, $"{shared.CachedPromptTokens} cached");
        Assert.True(shared.CachedPromptTokens < shared.PromptTokens);
        Assert.Equal(fresh.Text, shared.Text);
    }

    [Fact]
    public void RepeatedRagQuestionsShareTheSystemMessageAndTemplateHeader()
    {
        var model = models.WithTemplate;
        var retriever = new FakeRetriever(
            Passages.Make("volcano.md", "Kilauea is a shield volcano on the island of Hawaii.", 1, 1),
            Passages.Make("bread.md", "Sourdough bread rises with a starter of wild yeast.", 1, 1));
        RagAnswer Ask(string question) => RagEngine.Answer(new RagRequest
        {
            Question = question, Top = 2, Generation = new CompletionRequest { Temperature = 0, MaxTokens = 8 },
        }, retriever, model);
        Ask("Which volcano is on Hawaii?");
        var second = Ask("How does sourdough rise?");
        var systemTokens = model.CountTokens(RagPromptBuilder.DefaultSystem);
        Assert.True(second.CachedPromptTokens >= systemTokens, $"{second.CachedPromptTokens} cached, the system message alone is {systemTokens}");
        Assert.True(second.CachedPromptTokens < second.PromptTokens);
    }

    [Fact]
    public void TheCacheKeepsAtMostItsCapacityAndZeroDisablesIt()
    {
        using var one = LoadedModel.Load(models.Plain.Path, new ModelLoadOptions { ContextSize = 512, Threads = 2, PromptCacheContexts = 1 });
        CompletionEngine.Complete(one, Greedy("first prompt about harbours"));
        var afterFirst = one.CachedPromptTokens;
        CompletionEngine.Complete(one, Greedy("a second and unrelated prompt about mountains and snow"));
        Assert.True(afterFirst > 0);
        // One idle context: the second call reused (and overwrote) it rather than keeping both.
        Assert.True(one.CachedPromptTokens <= one.CountTokens("a second and unrelated prompt about mountains and snow", addBos: true) + 16);

        using var none = LoadedModel.Load(models.Plain.Path, new ModelLoadOptions { ContextSize = 512, Threads = 2, PromptCacheContexts = 0 });
        CompletionEngine.Complete(none, Greedy("first prompt about harbours"));
        var second = CompletionEngine.Complete(none, Greedy("first prompt about harbours"));
        Assert.Equal(0, second.CachedPromptTokens);
        Assert.Equal(0, none.CachedPromptTokens);
    }
}
