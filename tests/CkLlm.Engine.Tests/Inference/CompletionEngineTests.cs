using System.Text.Json;
using CkLlm.Engine.Inference;
using CkLlm.Engine.Model;
using CkLlm.Engine.Tests.Model;

namespace CkLlm.Engine.Tests.Inference;

public sealed class LoadedTestModels : IDisposable
{
    private readonly TestModels _files = new();

    public LoadedTestModels()
    {
        Plain = LoadedModel.Load(_files.Plain, new ModelLoadOptions { ContextSize = 512, Threads = 2 });
        WithTemplate = LoadedModel.Load(_files.WithTemplate, new ModelLoadOptions { ContextSize = 512, Threads = 2 });
    }

    public LoadedModel Plain { get; }
    public LoadedModel WithTemplate { get; }

    public void Dispose()
    {
        Plain.Dispose();
        WithTemplate.Dispose();
        _files.Dispose();
    }
}

public class CompletionEngineTests(LoadedTestModels models) : IClassFixture<LoadedTestModels>
{
    private static CompletionRequest Greedy(string prompt, int maxTokens = 24) =>
        new() { Prompt = prompt, Temperature = 0, MaxTokens = maxTokens };

    [Fact]
    public void GreedyCompletionIsDeterministic()
    {
        var a = CompletionEngine.Complete(models.Plain, Greedy("Once upon a time"));
        var b = CompletionEngine.Complete(models.Plain, Greedy("Once upon a time"));
        Assert.NotEmpty(a.Text);
        Assert.Equal(a.Text, b.Text);
        Assert.Equal("Once upon a time", a.Prompt);
        Assert.True(a.PromptTokens > 1);
        Assert.True(a.TokensPerSecond > 0);
        Assert.True(a.PromptTokensPerSecond > 0);
    }

    [Fact]
    public void FixedSeedReproducesSampledOutput()
    {
        CompletionRequest Sampled(uint seed) => new() { Prompt = "The", Temperature = 1.5f, TopK = 0, TopP = 1, MinP = 0, Seed = seed, MaxTokens = 24 };
        var a = CompletionEngine.Complete(models.Plain, Sampled(7));
        var b = CompletionEngine.Complete(models.Plain, Sampled(7));
        var c = CompletionEngine.Complete(models.Plain, Sampled(8));
        Assert.Equal(a.Text, b.Text);
        Assert.NotEqual(a.Text, c.Text);
    }

    [Fact]
    public void MaxTokensEndsWithLength()
    {
        var result = CompletionEngine.Complete(models.Plain, Greedy("Hello", maxTokens: 5));
        Assert.Equal(FinishReason.Length, result.FinishReason);
        Assert.Equal(5, result.CompletionTokens);
    }

    [Fact]
    public void StreamedChunksAddUpToTheResultText()
    {
        var chunks = CompletionEngine.Stream(models.Plain, Greedy("Hello world")).ToList();
        Assert.True(chunks[^1].IsFinal);
        Assert.All(chunks[..^1], c => Assert.False(c.IsFinal));
        Assert.Equal(chunks[^1].Result!.Text, string.Concat(chunks.Select(c => c.Text)));
    }

    [Fact]
    public void StopStringSpanningTokensEndsBeforeIt()
    {
        var pieces = CompletionEngine.Stream(models.Plain, Greedy("In the beginning", 30)).Where(c => !c.IsFinal).Select(c => c.Text).ToList();
        Assert.True(pieces.Count >= 6, "need several tokens");
        // Two consecutive token pieces form a stop string that spans a token boundary.
        var stop = pieces[3] + pieces[4];
        var full = string.Concat(pieces);
        var expected = full[..full.IndexOf(stop, StringComparison.Ordinal)];

        var streamed = new List<string>();
        var result = CompletionEngine.Complete(models.Plain, Greedy("In the beginning", 30) with { Stop = [stop] }, onText: streamed.Add);
        Assert.Equal(FinishReason.Stop, result.FinishReason);
        Assert.Equal(expected, result.Text);
        Assert.Equal(expected, string.Concat(streamed));
        Assert.DoesNotContain(stop, string.Concat(streamed));
    }

    [Fact]
    public void CancellationStopsWithinATokenAndTheModelStaysUsable()
    {
        var baseline = CompletionEngine.Complete(models.Plain, Greedy("Tell me", 16));
        using var cancel = new CancellationTokenSource();
        var tokensWhenCancelled = 0;
        CompletionResult? cancelled = null;
        foreach (var chunk in CompletionEngine.Stream(models.Plain, Greedy("Tell me", 200), cancel.Token))
        {
            if (chunk.IsFinal) { cancelled = chunk.Result; break; }
            if (chunk.CompletionTokens >= 3 && !cancel.IsCancellationRequested)
            {
                tokensWhenCancelled = chunk.CompletionTokens;
                cancel.Cancel();
            }
        }
        Assert.NotNull(cancelled);
        Assert.Equal(FinishReason.Cancelled, cancelled!.FinishReason);
        // Not one more token after the request.
        Assert.Equal(tokensWhenCancelled, cancelled.CompletionTokens);

        var after = CompletionEngine.Complete(models.Plain, Greedy("Tell me", 16));
        Assert.Equal(baseline.Text, after.Text);
    }

    [Fact]
    public async Task AsyncApisMatchTheSynchronousOne()
    {
        var expected = CompletionEngine.Complete(models.Plain, Greedy("Async", 10));
        var completed = await CompletionEngine.CompleteAsync(models.Plain, Greedy("Async", 10));
        var text = "";
        CompletionResult? final = null;
        await foreach (var chunk in CompletionEngine.StreamAsync(models.Plain, Greedy("Async", 10)))
        {
            text += chunk.Text;
            final = chunk.Result ?? final;
        }
        Assert.Equal(expected.Text, completed.Text);
        Assert.Equal(expected.Text, text);
        Assert.Equal(expected.Text, final!.Text);
    }

    [Fact]
    public void GrammarConstrainsTheOutput()
    {
        for (uint seed = 1; seed <= 3; seed++)
        {
            var result = CompletionEngine.Complete(models.Plain, new CompletionRequest
            {
                Prompt = "Is the sky blue?", Grammar = "root ::= \"yes\" | \"no\"", Temperature = 1, Seed = seed, MaxTokens = 10,
            });
            Assert.Contains(result.Text, new[] { "yes", "no" });
            Assert.Equal(FinishReason.Stop, result.FinishReason);
        }
    }

    [Fact]
    public void JsonSchemaOutputParsesAndMatches()
    {
        const string schema = """
            {"type":"object","properties":{
               "answer":{"enum":["red","green","blue"]},
               "count":{"type":"integer"},
               "ok":{"type":"boolean"},
               "tags":{"type":"array","items":{"type":"string","maxLength":4},"maxItems":2}},
             "required":["answer","count","ok","tags"]}
            """;
        var result = CompletionEngine.Complete(models.Plain, new CompletionRequest
        {
            Prompt = "Give me JSON:", JsonSchema = schema, Temperature = 0.7f, Seed = 3, MaxTokens = 120,
        });
        Assert.Equal(FinishReason.Stop, result.FinishReason);
        using var json = JsonDocument.Parse(result.Text);
        Assert.Contains(json.RootElement.GetProperty("answer").GetString(), new[] { "red", "green", "blue" });
        Assert.Equal(JsonValueKind.Number, json.RootElement.GetProperty("count").ValueKind);
        Assert.Contains(json.RootElement.GetProperty("ok").ValueKind, new[] { JsonValueKind.True, JsonValueKind.False });
        Assert.True(json.RootElement.GetProperty("tags").GetArrayLength() <= 2);
    }

    [Fact]
    public void ChatUsesTheModelsOwnTemplate()
    {
        var result = CompletionEngine.Complete(models.WithTemplate, new CompletionRequest
        {
            System = "Be brief.", Messages = [new ChatMessage("user", "Hello there")], Temperature = 0, MaxTokens = 4,
        });
        Assert.Equal("template", result.ChatFormat);
        Assert.Contains("<start_of_turn>user", result.Prompt);
        Assert.Contains("Hello there", result.Prompt);
        Assert.EndsWith("<start_of_turn>model\n", result.Prompt);
    }

    [Fact]
    public void ChatWithoutTemplateUsesTheDocumentedFallback()
    {
        var result = CompletionEngine.Complete(models.Plain, new CompletionRequest
        {
            System = "Be brief.", Prompt = "Hello there", Temperature = 0, MaxTokens = 4,
        });
        Assert.Equal("fallback", result.ChatFormat);
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n", result.Prompt);
    }

    [Fact]
    public void PlainPromptIsNotTemplated()
    {
        var result = CompletionEngine.Complete(models.WithTemplate, Greedy("raw text", 2));
        Assert.Equal("none", result.ChatFormat);
        Assert.Equal("raw text", result.Prompt);
    }

    [Fact]
    public void BadRequestsAreRejectedBeforeRunning()
    {
        Assert.Throws<ArgumentException>(() => CompletionEngine.Complete(models.Plain, new CompletionRequest()));
        Assert.Throws<ArgumentOutOfRangeException>(() => CompletionEngine.Complete(models.Plain, Greedy("x") with { Temperature = -1 }));
        Assert.Throws<ArgumentException>(() => CompletionEngine.Complete(models.Plain, Greedy("x") with { Grammar = "root ::= \"a\"", JsonSchema = "{}" }));
        var longPrompt = string.Join(' ', Enumerable.Repeat("word", 2000));
        Assert.Throws<ArgumentException>(() => CompletionEngine.Complete(models.Plain, Greedy(longPrompt)));
    }
}
