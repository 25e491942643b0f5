using System.Text.Json;
using CkLlm.Engine.Chat;
using CkLlm.Engine.Inference;
using CkLlm.Engine.Model;
using CkLlm.Engine.Tests.Model;

namespace CkLlm.Engine.Tests.Chat;

/// <summary>Generated Tiny models with a 2048-token context (a 1,500-token history fits).</summary>
public sealed class ChatTestModels : IDisposable
{
    private readonly TestModels _files = new();

    public ChatTestModels()
    {
        WithTemplate = LoadedModel.Load(_files.WithTemplate, new ModelLoadOptions { ContextSize = 2048, Threads = 2 });
        Plain = LoadedModel.Load(_files.Plain, new ModelLoadOptions { ContextSize = 2048, Threads = 2 });
    }

    public string WithTemplatePath => _files.WithTemplate;

    /// <summary>A model whose GGUF carries a chat template llama.cpp applies (Gemma family).</summary>
    public LoadedModel WithTemplate { get; }

    /// <summary>No template: chats use the ChatML-like fallback.</summary>
    public LoadedModel Plain { get; }

    public void Dispose()
    {
        WithTemplate.Dispose();
        Plain.Dispose();
        _files.Dispose();
    }
}

public class ChatConversationTests(ChatTestModels models) : IClassFixture<ChatTestModels>
{
    private const string System = "You are a terse assistant.";
    private static readonly string[] Messages =
        ["Tell me about the sea.", "Why is it salty?", "And what lives in it?", "Name one fish."];

    private static ChatTurnRequest Greedy(string message, int maxTokens = 24) =>
        new() { Message = message, Sampling = new SamplingOptions { Temperature = 0, MaxTokens = maxTokens } };

    /// <summary>The reply a fresh context gives to the same messages (no cache of any kind).</summary>
    private static CompletionResult Fresh(LoadedModel model, string? system, IEnumerable<ChatMessage> history, string message, int maxTokens = 24) =>
        CompletionEngine.Complete(model, new CompletionRequest
        {
            System = system,
            Messages = [.. history, new ChatMessage("user", message)],
            Temperature = 0,
            MaxTokens = maxTokens,
            CachePrompt = false,
        });

    public static TheoryData<string> Formats => new() { "template", "fallback" };

    private LoadedModel ModelFor(string format) => format == "template" ? models.WithTemplate : models.Plain;

    [Theory]
    [MemberData(nameof(Formats))]
    public void GreedyTurnsEqualFreshContextRunsOverTheSameMessages(string format)
    {
        var model = ModelFor(format);
        using var chat = new ChatConversation(model, new ChatOptions { Name = "fresh-check", System = System });
        var cachedAnyTurn = false;
        foreach (var message in Messages)
        {
            var history = chat.Messages;
            var turn = chat.Send(Greedy(message));
            var fresh = Fresh(model, System, history, message);
            Assert.Equal(fresh.Text, turn.Text);
            Assert.Equal(fresh.PromptTokens, turn.PromptTokens);
            Assert.Equal(turn.PromptTokens, turn.EvaluatedTokens + turn.CachedPromptTokens);
            if (turn.Number > 1) cachedAnyTurn |= turn.CachedPromptTokens > 0;
        }
        Assert.True(cachedAnyTurn, "later turns reuse the kept cache");
        Assert.Equal(Messages.Length * 2, chat.Messages.Count);
    }

    [Fact]
    public void SecondTurnAfterALongHistoryEvaluatesUnderATenthOfIt()
    {
        var model = models.WithTemplate;
        var history = LongHistory(model, System, targetTokens: 1500);
        var transcript = new ChatTranscript { Name = "long", Model = model.Name, System = System, Messages = history };
        using var chat = ChatConversation.Import(transcript, model);

        var first = chat.Send(Greedy("Summarise that in one line.", 16));
        Assert.True(first.PromptTokens >= 1500, $"history prompt has {first.PromptTokens} tokens");
        Assert.Equal(0, first.CachedPromptTokens); // an imported chat starts with an empty cache

        var second = chat.Send(Greedy("Thanks. Anything else?", 16));
        var historyTokens = first.PromptTokens;
        Assert.True(second.EvaluatedTokens < historyTokens / 10,
            $"turn 2 evaluated {second.EvaluatedTokens} of {second.PromptTokens} prompt tokens; the history had {historyTokens}");
        Assert.True(second.CachedPromptTokens >= historyTokens - 8);
        Assert.Equal(Fresh(model, System, [.. history, new("user", first.Message), new("assistant", first.Text)], second.Message, 16).Text, second.Text);
    }

    [Fact]
    public void WithoutStateReuseEveryTurnEvaluatesEverythingAndSaysTheSame()
    {
        var model = models.WithTemplate;
        using var kept = new ChatConversation(model, new ChatOptions { Name = "kept", System = System });
        using var fresh = new ChatConversation(model, new ChatOptions { Name = "no-reuse", System = System, ReuseState = false });
        foreach (var message in Messages[..3])
        {
            var a = kept.Send(Greedy(message));
            var b = fresh.Send(Greedy(message));
            Assert.Equal(a.Text, b.Text);
            Assert.Equal(0, b.CachedPromptTokens);
            Assert.Equal(b.PromptTokens, b.EvaluatedTokens);
        }
        Assert.Equal(0, fresh.KeptTokens);
        Assert.True(kept.KeptTokens > 0);
    }

    [Fact]
    public void AnExportedAndImportedChatContinuesIdentically()
    {
        var model = models.WithTemplate;
        using var original = new ChatConversation(model, new ChatOptions { Name = "saved", System = System });
        original.Send(Greedy(Messages[0]));
        original.Send(Greedy(Messages[1]));

        var json = JsonSerializer.Serialize(original.Export());
        var transcript = JsonSerializer.Deserialize<ChatTranscript>(json)!;
        using var restored = ChatConversation.Import(transcript, model, "restored");
        Assert.Equal(original.Messages, restored.Messages);
        Assert.Equal(2, restored.TurnCount);
        Assert.Equal(System, restored.System);

        var a = original.Send(Greedy(Messages[2]));
        var b = restored.Send(Greedy(Messages[2]));
        Assert.Equal(a.Text, b.Text);
        Assert.Equal(3, b.Number);
        Assert.True(a.CachedPromptTokens > 0);
        Assert.Equal(0, b.CachedPromptTokens);
    }

    [Fact]
    public void AnOverflowingHistoryDropsTheOldestTurnsOnceKeepsTheSystemAndStillMatchesAFreshRun()
    {
        using var small = LoadedModel.Load(models.WithTemplatePath, new ModelLoadOptions { ContextSize = 512, Threads = 2, Name = "small" });
        using var chat = new ChatConversation(small, new ChatOptions { Name = "overflow", System = System });
        var filler = string.Join(' ', Enumerable.Repeat("the quiet river runs past old stone bridges", 8));
        var notices = new List<string>();
        ChatTurn? droppedAt = null;
        for (var i = 0; i < 12 && droppedAt is null; i++)
        {
            foreach (var chunk in chat.Stream(Greedy($"{i}: {filler}", 32)))
            {
                if (chunk.Notice is not null) notices.Add(chunk.Notice);
                if (chunk.Turn is { DroppedTurns: > 0 } turn) droppedAt = turn;
            }
        }
        Assert.NotNull(droppedAt);
        Assert.Single(notices);
        Assert.Contains("oldest turn(s) were dropped", notices[0]);
        Assert.True(droppedAt!.PromptTokens + 32 + ChatConversation.SafetyMargin <= small.ContextSize);

        // The next turn fits without dropping again and reuses the rebuilt cache; its text is a fresh run's.
        var history = chat.Messages;
        var next = chat.Send(Greedy("short one", 32));
        Assert.Equal(0, next.DroppedTurns);
        Assert.True(next.CachedPromptTokens > next.EvaluatedTokens);
        // Same prompt as a fresh run with the system message in front: the system message was kept.
        var fresh = Fresh(small, System, history, "short one", 32);
        Assert.Equal(fresh.Text, next.Text);
        Assert.Equal(fresh.PromptTokens, next.PromptTokens);
    }

    [Fact]
    public async Task TwoChatsOnOneModelRunningAtOnceDoNotInterfere()
    {
        var model = models.WithTemplate;
        string[] Run(string name, string[] messages)
        {
            using var chat = new ChatConversation(model, new ChatOptions { Name = name, System = System });
            return messages.Select(m => chat.Send(Greedy(m)).Text).ToArray();
        }
        string[] first = ["Tell me about the sea.", "Why is it salty?", "What lives in it?"];
        string[] second = ["Describe a mountain.", "How high can it be?", "Who climbs it?"];
        var expectedFirst = Run("a", first);
        var expectedSecond = Run("b", second);

        var parallel = await Task.WhenAll(Task.Run(() => Run("p1", first)), Task.Run(() => Run("p2", second)));
        Assert.Equal(expectedFirst, parallel[0]);
        Assert.Equal(expectedSecond, parallel[1]);
    }

    [Fact]
    public void AChatWhoseModelWasRemovedSaysSoAndItsContextIsFreed()
    {
        var model = LoadedModel.Load(models.WithTemplatePath, new ModelLoadOptions { ContextSize = 512, Threads = 2, Name = "doomed" });
        using var chat = new ChatConversation(model, new ChatOptions { Name = "orphan" });
        chat.Send(Greedy("hello", 4));
        Assert.True(chat.KeptTokens > 0);
        model.Dispose();
        Assert.True(model.NativeHandleClosed);
        var error = Assert.Throws<ChatModelRemovedException>(() => chat.Send(Greedy("still there?", 4)));
        Assert.Equal("doomed", error.ModelName);
        Assert.Equal("orphan", error.Chat);
    }

    [Fact]
    public void ARemovedChatRefusesTurnsAndFreesItsSequence()
    {
        var chat = new ChatConversation(models.WithTemplate, new ChatOptions { Name = "gone" });
        chat.Send(Greedy("hello", 4));
        Assert.True(chat.KeptTokens > 0);
        chat.Dispose();
        Assert.Equal(0, chat.KeptTokens);
        Assert.Throws<ChatRemovedException>(() => chat.Send(Greedy("again", 4)));
    }

    [Fact]
    public void ACancelledReplyKeepsItsTextAndTheNextTurnStillMatchesAFreshRun()
    {
        var model = models.WithTemplate;
        using var chat = new ChatConversation(model, new ChatOptions { Name = "cancel", System = System });
        using var cancel = new CancellationTokenSource();
        ChatTurn? cancelled = null;
        var pieces = 0;
        foreach (var chunk in chat.Stream(Greedy(Messages[0], 200), cancel.Token))
        {
            if (chunk.Turn is not null) { cancelled = chunk.Turn; break; }
            if (chunk.Text.Length > 0 && ++pieces == 3) cancel.Cancel();
        }
        Assert.NotNull(cancelled);
        Assert.Equal(FinishReason.Cancelled, cancelled!.FinishReason);
        Assert.Equal(cancelled.Text, chat.Messages[1].Content);

        var history = chat.Messages;
        var next = chat.Send(Greedy(Messages[1]));
        Assert.Equal(Fresh(model, System, history, Messages[1]).Text, next.Text);
        Assert.True(next.CachedPromptTokens > 0);
    }

    [Fact]
    public void ResetForgetsTheHistoryButKeepsTheSystemMessage()
    {
        var model = models.WithTemplate;
        using var chat = new ChatConversation(model, new ChatOptions { Name = "reset", System = System });
        chat.Send(Greedy(Messages[0]));
        chat.Reset();
        Assert.Empty(chat.Messages);
        var turn = chat.Send(Greedy(Messages[1]));
        Assert.Equal(Fresh(model, System, [], Messages[1]).Text, turn.Text);
        Assert.True(turn.CachedPromptTokens > 0, "the system part of the kept cache is reused");
    }

    /// <summary>User/assistant pairs of ordinary prose whose chat prompt takes about <paramref name="targetTokens"/> tokens.</summary>
    internal static List<ChatMessage> LongHistory(LoadedModel model, string system, int targetTokens)
    {
        var sentences = new[]
        {
            "The harbour wakes before dawn when the fishing boats return with their nets.",
            "Gulls circle above the market while traders argue about the price of cod.",
            "In winter the northern wind pushes waves over the old sea wall.",
            "Children collect shells along the shore and sort them by colour.",
        };
        var history = new List<ChatMessage>();
        var i = 0;
        while (history.Count == 0 || model.CountTokens(model.Format(new CompletionRequest { System = system, Messages = history }).Text) < targetTokens)
        {
            history.Add(new ChatMessage("user", $"Tell me more, part {i}. {sentences[i % 4]}"));
            history.Add(new ChatMessage("assistant", string.Join(' ', Enumerable.Range(0, 4).Select(k => sentences[(i + k) % 4]))));
            i++;
        }
        return history;
    }
}
