using System.Diagnostics;
using CkLlm.Engine.Inference;
using CkLlm.Engine.Model;

namespace CkLlm.Engine.Rag;

/// <summary>A built RAG prompt: the messages, the text after the chat template, and the fitting outcome.</summary>
public sealed record RagPrompt(string System, string User, string Text, string Format, FittedPrompt Fitted);

/// <summary>Finds passages for a question (the knowledge base, or a stand-in in tests).</summary>
public interface IRagRetriever
{
    /// <summary>Passages best first, honouring Top, Mode, Filter and MinScore of the request.</summary>
    IReadOnlyList<RagPassage> Retrieve(RagRequest request, CancellationToken cancellationToken);
}

/// <summary>The model side of RAG: chat formatting, token counting and generation.</summary>
public interface IRagGenerator
{
    string Name { get; }
    /// <summary>Context window of one completion, in tokens.</summary>
    int ContextSize { get; }
    /// <summary>Tokens the model will see for this exact prompt text (never fewer than the real count).</summary>
    int CountTokens(string prompt);
    /// <summary>The prompt text of a system + user chat, and how it was made ("template" or "fallback").</summary>
    (string Prompt, string Format) FormatChat(string system, string user);
    /// <summary>Generates for the chat in <paramref name="request"/> (System + Prompt).</summary>
    IEnumerable<CompletionChunk> Stream(CompletionRequest request, CancellationToken cancellationToken);
    /// <summary>Breaks the text of this model's control tokens in retrieved text (default: every known template family).</summary>
    ControlTokenDefuser Defuser => ControlTokenDefuser.Generic;
}

/// <summary>A loaded llama.cpp model as the RAG generator: its own chat template and tokenizer.</summary>
public sealed class ModelRagGenerator(LoadedModel model) : IRagGenerator
{
    public string Name => model.Name;
    public int ContextSize => model.ContextSize;

    // BOS always counted and special-token text parsed as the completion engine does: at worst one token too many.
    public int CountTokens(string prompt) => model.Tokenize(prompt, addBos: true, parseSpecial: true).Length;

    public (string Prompt, string Format) FormatChat(string system, string user)
    {
        var (prompt, format, _) = ChatFormatter.Format(model, new CompletionRequest { System = system, Prompt = user });
        return (prompt, format);
    }

    public IEnumerable<CompletionChunk> Stream(CompletionRequest request, CancellationToken cancellationToken) =>
        CompletionEngine.Stream(model, request, cancellationToken);

    /// <summary>Knows the model's own special tokens from its vocabulary, besides every template family's.</summary>
    public ControlTokenDefuser Defuser => ModelControlTokens.DefuserFor(model);
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
    public static IEnumerable<RagChunk> Stream(RagRequest request, IRagRetriever retriever, IRagGenerator generator, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(retriever);
        ArgumentNullException.ThrowIfNull(generator);
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
                Model = generator.Name,
                RetrievalMs = retrievalMs,
            })];

        var prompt = BuildPrompt(request, passages, generator);
        var fitted = prompt.Fitted;
        var citations = fitted.Passages.Select(ToCitation).ToArray();
        var answer = new RagAnswer
        {
            Question = request.Question,
            Citations = citations,
            Model = generator.Name,
            PromptTokens = fitted.PromptTokens,
            RetrievalMs = retrievalMs,
            Prompt = prompt.Text,
            ChatFormat = prompt.Format,
            PassagesRetrieved = passages.Length,
            PassagesDropped = fitted.Dropped,
            PassagesTrimmed = fitted.Trimmed,
        };
        if (request.PromptOnly) return [new RagChunk(string.Empty, answer)];
        return Generate(request, prompt, answer, generator, cancellationToken);
    }

    /// <summary>Answers synchronously; <paramref name="onText"/> (optional) receives the answer as it is generated.</summary>
    public static RagAnswer Answer(RagRequest request, IRagRetriever retriever, IRagGenerator generator,
        CancellationToken cancellationToken = default, Action<string>? onText = null)
    {
        foreach (var chunk in Stream(request, retriever, generator, cancellationToken))
        {
            if (chunk.Answer is not null) return chunk.Answer;
            onText?.Invoke(chunk.Text);
        }
        throw new InvalidOperationException("The RAG answer ended without a result.");
    }

    /// <summary>The fitted prompt for <paramref name="passages"/> (best first): system and user messages, the text
    /// after the chat template, and which passages made it in.</summary>
    /// <exception cref="RagBudgetException">The prompt cannot fit the context window.</exception>
    public static RagPrompt BuildPrompt(RagRequest request, IReadOnlyList<RagPassage> passages, IRagGenerator generator)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(passages);
        ArgumentNullException.ThrowIfNull(generator);
        var builder = new RagPromptBuilder(request.System, request.Template, RagPromptBuilder.NewBoundary(passages), generator.Defuser);
        var fitted = PassageFitter.Fit(passages,
            included => generator.FormatChat(builder.System, builder.BuildUser(request.Question, included)).Prompt,
            generator.CountTokens, generator.ContextSize, request.Generation.MaxTokens, request.SafetyMargin);
        var user = builder.BuildUser(request.Question, fitted.Passages);
        var (text, format) = generator.FormatChat(builder.System, user);
        return new RagPrompt(builder.System, user, text, format, fitted);
    }

    private static IEnumerable<RagChunk> Generate(RagRequest request, RagPrompt prompt, RagAnswer answer, IRagGenerator generator,
        CancellationToken cancellationToken)
    {
        var completion = request.Generation with { System = prompt.System, Prompt = prompt.User, Messages = null };
        var clock = Stopwatch.StartNew();
        CompletionResult? result = null;
        foreach (var chunk in generator.Stream(completion, cancellationToken))
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
            CompletionTokens = result.CompletionTokens,
            TokensPerSecond = result.TokensPerSecond,
            GenerationMs = clock.Elapsed.TotalMilliseconds,
            FinishReason = result.FinishReason,
            ChatFormat = result.ChatFormat,
        });
    }

    private static RagCitation ToCitation(PromptPassage p) => new()
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
