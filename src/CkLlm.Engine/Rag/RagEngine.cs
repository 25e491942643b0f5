using System.Diagnostics;
using CkLlm.Engine.Inference;

namespace CkLlm.Engine.Rag;

/// <summary>A built RAG prompt: the messages, the text after the chat template, and the fitting outcome.</summary>
public sealed record RagPrompt(string System, string User, string Text, string Format, FittedPrompt Fitted);

/// <summary>Finds passages for a question (the knowledge base, or a stand-in in tests).</summary>
public interface IRagRetriever
{
    /// <summary>Passages best first, honouring Top, Mode, Filter and MinScore of the request.</summary>
    IReadOnlyList<RagPassage> Retrieve(RagRequest request, CancellationToken cancellationToken);
}

/// <summary>
/// Retrieval-augmented generation: retrieve passages, fit them into the model's context window as numbered, delimited
/// data, generate an answer that cites [n], and check those citations. No passage at or above MinScore means
/// NoKnowledge: the model is not called.
/// </summary>
public static class RagEngine
{
    public const string NoKnowledgeAnswer = "No passage in the knowledge base matched this question well enough (MinScore {0}), so the model was not asked.";

    /// <summary>Streams the answer text; the final chunk carries the <see cref="RagAnswer"/>. Runs on the calling thread.</summary>
    /// <exception cref="RagBudgetException">The prompt cannot fit the context window.</exception>
    public static IEnumerable<RagChunk> Stream(RagRequest request, IRagRetriever retriever, IChatModel model, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(retriever);
        ArgumentNullException.ThrowIfNull(model);
        Validate(request);

        // Retrieval, validation and prompt building happen before the first MoveNext returns, so errors surface early.
        var retrievalClock = Stopwatch.StartNew();
        var passages = retriever.Retrieve(request, cancellationToken).Where(p => p.Score >= request.MinScore).Take(request.Top).ToArray();
        retrievalClock.Stop();
        var retrievalMs = retrievalClock.Elapsed.TotalMilliseconds;

        if (passages.Length == 0)
            return [new RagChunk(string.Empty, new RagAnswer
            {
                Question = request.Question,
                Answer = string.Format(System.Globalization.CultureInfo.InvariantCulture, NoKnowledgeAnswer, request.MinScore),
                NoKnowledge = true,
                Model = model.Name,
                RetrievalMs = retrievalMs,
            })];

        var prompt = BuildPrompt(request, passages, model);
        var fitted = prompt.Fitted;
        var citations = fitted.Passages.Select(ToCitation).ToArray();
        var answer = new RagAnswer
        {
            Question = request.Question,
            Citations = citations,
            Model = model.Name,
            PromptTokens = fitted.PromptTokens,
            RetrievalMs = retrievalMs,
            Prompt = prompt.Text,
            ChatFormat = prompt.Format,
            PassagesRetrieved = passages.Length,
            PassagesDropped = fitted.Dropped,
            PassagesTrimmed = fitted.Trimmed,
        };
        if (request.PromptOnly) return [new RagChunk(string.Empty, answer)];
        return Generate(request, prompt, answer, model, cancellationToken);
    }

    /// <summary>Answers synchronously; <paramref name="onText"/> (optional) receives the answer as it is generated.</summary>
    public static RagAnswer Answer(RagRequest request, IRagRetriever retriever, IChatModel model,
        CancellationToken cancellationToken = default, Action<string>? onText = null)
    {
        foreach (var chunk in Stream(request, retriever, model, cancellationToken))
        {
            if (chunk.Answer is not null) return chunk.Answer;
            onText?.Invoke(chunk.Text);
        }
        throw new InvalidOperationException("The RAG answer ended without a result.");
    }

    /// <summary>The fitted prompt for <paramref name="passages"/> (best first): system and user messages, the text
    /// after the chat template, and which passages made it in.</summary>
    /// <exception cref="RagBudgetException">The prompt cannot fit the context window.</exception>
    public static RagPrompt BuildPrompt(RagRequest request, IReadOnlyList<RagPassage> passages, IChatModel model)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(passages);
        ArgumentNullException.ThrowIfNull(model);
        var builder = new RagPromptBuilder(request.System, request.Template, RagPromptBuilder.NewBoundary(passages), ModelControlTokens.DefuserFor(model));
        var fitted = PassageFitter.Fit(passages,
            included => FormatChat(model, builder.System, builder.BuildUser(request.Question, included)).Text,
            model.CountTokens, model.ContextSize, request.Generation.MaxTokens, request.SafetyMargin);
        var user = builder.BuildUser(request.Question, fitted.Passages);
        var formatted = FormatChat(model, builder.System, user);
        return new RagPrompt(builder.System, user, formatted.Text, formatted.Format, fitted);
    }

    /// <summary>A system + user chat as <paramref name="model"/> formats it.</summary>
    public static FormattedPrompt FormatChat(IChatModel model, string system, string user)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.Format(new CompletionRequest { System = system, Prompt = user });
    }

    private static IEnumerable<RagChunk> Generate(RagRequest request, RagPrompt prompt, RagAnswer answer, IChatModel model,
        CancellationToken cancellationToken)
    {
        var completion = request.Generation with { System = prompt.System, Prompt = prompt.User, Messages = null };
        var clock = Stopwatch.StartNew();
        CompletionResult? result = null;
        foreach (var chunk in model.Stream(completion, cancellationToken))
        {
            if (chunk.Result is not null) { result = chunk.Result; break; }
            if (chunk.Text.Length > 0) yield return new RagChunk(chunk.Text);
        }
        clock.Stop();
        if (result is null) throw new InvalidOperationException("The completion ended without a result.");

        var (cited, unknown) = CitationParser.Classify(result.Text, prompt.Fitted.Passages.Count);
        yield return new RagChunk(string.Empty, answer with
        {
            Answer = result.Text,
            CitedNumbers = cited,
            UnknownCitations = unknown,
            Prompt = result.Prompt,
            PromptTokens = result.PromptTokens,
            CachedPromptTokens = result.CachedPromptTokens,
            CompletionTokens = result.CompletionTokens,
            TokensPerSecond = result.TokensPerSecond,
            GenerationMs = clock.Elapsed.TotalMilliseconds,
            FinishReason = result.FinishReason,
            ChatFormat = result.ChatFormat,
        });
    }

    internal static RagCitation ToCitation(PromptPassage p) => new()
    {
        Number = p.Number,
        Source = p.Passage.Source,
        Heading = p.Passage.Heading,
        LineStart = p.Passage.LineStart,
        LineEnd = p.Passage.LineEnd,
        Page = p.Passage.Page,
        Score = p.Passage.Score,
        Text = p.Text,
        Trimmed = p.Trimmed,
    };

    private static void Validate(RagRequest request)
    {
        if (string.IsNullOrWhiteSpace(request.Question)) throw new ArgumentException("The question is empty.", nameof(request));
        if (request.Top < 1) throw new ArgumentOutOfRangeException(nameof(request), "Top must be at least 1.");
        if (request.SafetyMargin < 0) throw new ArgumentOutOfRangeException(nameof(request), "SafetyMargin must not be negative.");
        if (request.Generation is null) throw new ArgumentException("Generation settings are missing.", nameof(request));
    }
}
