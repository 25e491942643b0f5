using System.Text;
using CkLlm.Engine.Chat;
using CkLlm.Engine.Inference;
using CkLlm.Engine.Rag;
using CkLlm.Engine.Tests.Rag;

namespace CkLlm.Engine.Tests.Chat;

/// <summary>
/// A chat model double that renders whole conversations (system, every message) and answers from a script: the
/// question rewrite gets <see cref="Rewrite"/>, the summary <see cref="SummaryText"/>, every other call
/// <see cref="Reply"/>. It keeps nothing between calls (the interface's stateless sequence), like a remote backend.
/// </summary>
internal sealed class ScriptedChatModel(int contextSize) : IChatModel
{
    public string Rewrite { get; set; } = "How tall is Kilauea?";
    public string SummaryText { get; set; } = "They talked about volcanoes.";
    public string Reply { get; set; } = "It is a shield volcano [1].";
    public List<CompletionRequest> Requests { get; } = [];
    public string Name => "scripted";
    public int ContextSize => contextSize;
    public bool IsDisposed { get; private set; }

    public int CountTokens(string prompt) => FakeGenerator.Count(prompt);

    public FormattedPrompt Format(CompletionRequest request)
    {
        var text = new StringBuilder();
        if (request.System is not null) text.Append("<sys>").Append(request.System).Append("</sys>\n");
        foreach (var message in request.Messages ?? []) text.Append('<').Append(message.Role).Append('>').Append(message.Content).Append("</").Append(message.Role).Append(">\n");
        if (request.Prompt is not null) text.Append("<user>").Append(request.Prompt).Append("</user>\n");
        return new FormattedPrompt(text.Append("<assistant>").ToString(), "scripted", []);
    }

    public async IAsyncEnumerable<CompletionChunk> StreamAsync(CompletionRequest request,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        lock (Requests) Requests.Add(request);
        await Task.Yield();
        var answer = request.System == ChatGrounding.RewriteSystem ? Rewrite : request.System == ChatGrounding.SummarySystem ? SummaryText : Reply;
        var prompt = Format(request).Text;
        yield return new CompletionChunk(answer, 1);
        yield return new CompletionChunk("", 1, new CompletionResult
        {
            Model = Name, Prompt = prompt, Text = answer, PromptTokens = CountTokens(prompt), CompletionTokens = CountTokens(answer),
            TokensPerSecond = 100, PromptTokensPerSecond = 1000, FinishReason = FinishReason.Stop, ChatFormat = "scripted", Duration = TimeSpan.FromMilliseconds(1),
        });
    }

    public void Dispose() => IsDisposed = true;
}

/// <summary>A retriever double that records the questions it was asked.</summary>
internal sealed class RecordingRetriever(params RagPassage[] passages) : IRagRetriever
{
    public List<string> Questions { get; } = [];

    public IReadOnlyList<RagPassage> Retrieve(RagRequest request, CancellationToken cancellationToken)
    {
        Questions.Add(request.Question);
        return passages.Take(request.Top).ToArray();
    }
}

public class GroundedChatTests
{
    private static readonly RagPassage Volcano = Passages.Make("volcano.md", "Kilauea is a shield volcano on the island of Hawaii.", 3, 3);
    private static readonly RagPassage Height = Passages.Make("height.md", "Kilauea rises 1,247 metres above sea level.", 7, 7);

    private static ChatTurnRequest Turn(string message, IRagRetriever retriever) =>
        new() { Message = message, Retriever = retriever, Sampling = new SamplingOptions { Temperature = 0, MaxTokens = 32 } };

    [Fact]
    public void FollowUpsRetrieveForTheRewrittenQuestionAndKeepOnlyQuestionsAndAnswers()
    {
        var model = new ScriptedChatModel(4096);
        var retriever = new RecordingRetriever(Volcano, Height);
        using var chat = new ChatConversation(model, new ChatOptions { Name = "grounded", KnowledgeBase = "/kb" });

        var first = chat.Send(Turn("Which volcano is on Hawaii?", retriever));
        var second = chat.Send(Turn("How tall is it?", retriever));

        // The first question stands alone; the follow-up is rewritten by the model and that is what is searched.
        Assert.Equal(["Which volcano is on Hawaii?", "How tall is Kilauea?"], retriever.Questions);
        Assert.Equal("Which volcano is on Hawaii?", first.StandaloneQuestion);
        Assert.Equal("How tall is Kilauea?", second.StandaloneQuestion);
        var rewrite = model.Requests.Single(r => r.System == ChatGrounding.RewriteSystem);
        Assert.Contains("Which volcano is on Hawaii?", rewrite.Prompt);
        Assert.Contains("How tall is it?", rewrite.Prompt);

        // Numbered citations like Invoke-CkRag, checked against the reply.
        Assert.Equal([1, 2], second.Citations.Select(c => c.Number));
        Assert.Equal("volcano.md", second.Citations[0].Source);
        Assert.Equal([1], second.CitedNumbers);

        // The history holds the questions and answers only; this turn's prompt has this turn's passages only.
        Assert.Equal(["Which volcano is on Hawaii?", first.Text, "How tall is it?", second.Text], chat.Messages.Select(m => m.Content));
        var lastPrompt = model.Requests.Last().Messages!;
        Assert.Equal(RagPromptBuilder.DefaultSystem, model.Requests.Last().System);
        Assert.Single(lastPrompt, m => m.Content.Contains("BEGIN PASSAGE"));
        Assert.DoesNotContain("BEGIN PASSAGE", lastPrompt[0].Content);
        Assert.Contains("How tall is it?", lastPrompt[^1].Content);
    }

    [Fact]
    public void UnknownCitationNumbersAreReported()
    {
        var model = new ScriptedChatModel(4096) { Reply = "See [1] and [7]." };
        using var chat = new ChatConversation(model, new ChatOptions { Name = "cites", KnowledgeBase = "/kb" });
        var turn = chat.Send(Turn("Which volcano is on Hawaii?", new RecordingRetriever(Volcano)));
        Assert.Equal([1], turn.CitedNumbers);
        Assert.Equal([7], turn.UnknownCitations);
    }

    [Fact]
    public void SummarizeFoldsDroppedTurnsIntoTheSystemMessage()
    {
        var model = new ScriptedChatModel(400) { Reply = string.Join(' ', Enumerable.Repeat("word", 60)) };
        using var chat = new ChatConversation(model, new ChatOptions { Name = "summary", System = "Be brief.", Summarize = true });
        var turns = Enumerable.Range(0, 8).Select(i => chat.Send(new ChatTurnRequest
        {
            Message = $"message {i} " + string.Join(' ', Enumerable.Repeat("text", 30)),
            Sampling = new SamplingOptions { MaxTokens = 64 },
        })).ToList();

        var summarized = turns.First(t => t.Summarized);
        Assert.True(summarized.DroppedTurns > 0);
        Assert.Equal("They talked about volcanoes.", chat.Summary);
        var next = model.Requests.Last(r => r.System != ChatGrounding.SummarySystem);
        Assert.StartsWith("Be brief.", next.System);
        Assert.Contains(ChatGrounding.SummaryHeading + "\nThey talked about volcanoes.", next.System);
        Assert.Equal(8, chat.TurnCount);
        Assert.True(chat.Messages.Count < 16);
    }

    [Fact]
    public void AMessageThatCannotFitEvenAloneIsABudgetError()
    {
        var model = new ScriptedChatModel(64);
        using var chat = new ChatConversation(model, new ChatOptions { Name = "tiny" });
        var error = Assert.Throws<ChatBudgetException>(() => chat.Send(new ChatTurnRequest
        {
            Message = string.Join(' ', Enumerable.Repeat("long", 80)),
            Sampling = new SamplingOptions { MaxTokens = 8 },
        }));
        Assert.Contains("context of model 'scripted'", error.Message);
        Assert.Empty(chat.Messages);
    }

    [Fact]
    public void CleanQuestionTakesTheFirstLineWithoutLabelOrQuotes()
    {
        Assert.Equal("How tall is Kilauea?", ChatGrounding.CleanQuestion("\n Standalone question: \"How tall is Kilauea?\"\nextra"));
        Assert.Null(ChatGrounding.CleanQuestion("  \n \"\" "));
    }
}
