using System.Diagnostics;
using CkLlm.Engine.Inference;
using CkLlm.Engine.Rag;

namespace CkLlm.Engine.Chat;

/// <summary>
/// A multi-turn conversation with one model. It keeps the model's sequence (llama.cpp's KV cache) between turns, so a
/// turn evaluates only the tokens after the longest prefix its prompt shares with the previous prompt and reply: the
/// new message and whatever the chat template re-renders differently. The cache changes speed, never text: a turn at
/// temperature 0 gives the same reply as a fresh context over the same messages.
/// </summary>
/// <remarks>
/// When the history no longer fits (prompt + MaxTokens + margin over the context), the oldest turns are dropped (the
/// system message always stays) until the history takes at most half of the room, so the cache is rebuilt once and
/// the next turns reuse it again. A grounded chat (<see cref="ChatOptions.KnowledgeBase"/>) keeps only the questions
/// and answers in its history; the passages of a turn are in that turn's prompt alone. Turns run one at a time; the
/// object is thread-safe.
/// </remarks>
public sealed class ChatConversation : IDisposable
{
    /// <summary>Tokens kept free on top of MaxTokens, so the prompt never fills the window exactly.</summary>
    public const int SafetyMargin = 16;

    private readonly object _gate = new();
    private readonly SemaphoreSlim _turnGate = new(1, 1);
    private readonly CancellationTokenSource _life = new();
    private readonly List<ChatMessage> _history = [];
    private readonly List<ChatTurn> _turns = [];
    private IChatSequence? _sequence;
    private string? _summary;
    private int _disposed;

    public ChatConversation(IChatModel model, ChatOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new ChatOptions();
        if (options.System is not null && string.IsNullOrWhiteSpace(options.System)) throw new ArgumentException("The system message must not be empty.", nameof(options));
        if (options.Name is not null && string.IsNullOrWhiteSpace(options.Name)) throw new ArgumentException("The chat name must not be empty.", nameof(options));
        if (model.IsDisposed) throw new ObjectDisposedException(model.Name, $"Model '{model.Name}' has been removed.");
        Model = model;
        Name = options.Name ?? "chat";
        System = options.System;
        KnowledgeBase = options.KnowledgeBase;
        Summarize = options.Summarize;
        ReuseState = options.ReuseState;
    }

    /// <summary>Rebuilds a saved chat on <paramref name="model"/>: same history, summary and settings (the cache is
    /// empty, so its first turn evaluates the whole history once).</summary>
    public static ChatConversation Import(ChatTranscript transcript, IChatModel model, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(transcript);
        if (transcript.Format != ChatTranscript.CurrentFormat)
            throw new InvalidDataException($"Not a CkLlm chat transcript (format '{transcript.Format}', expected '{ChatTranscript.CurrentFormat}').");
        foreach (var message in transcript.Messages)
        {
            if (message is null || message.Role is not ("user" or "assistant") || message.Content is null)
                throw new InvalidDataException("A transcript message needs a role 'user' or 'assistant' and a content.");
        }
        var chat = new ChatConversation(model, new ChatOptions
        {
            Name = name ?? transcript.Name,
            System = transcript.System,
            KnowledgeBase = transcript.KnowledgeBase,
            Summarize = transcript.Summarize,
        })
        {
            Created = transcript.Created == default ? DateTimeOffset.Now : transcript.Created,
        };
        chat._history.AddRange(transcript.Messages);
        chat._turns.AddRange(transcript.Turns.Select(t => t with { Chat = chat.Name }));
        chat._summary = transcript.Summary;
        return chat;
    }

    public Guid Id { get; } = Guid.NewGuid();
    public string Name { get; internal set; }
    public IChatModel Model { get; }
    public string ModelName => Model.Name;
    public string? System { get; }
    public string? KnowledgeBase { get; }
    public bool Summarize { get; }
    public bool ReuseState { get; }
    public DateTimeOffset Created { get; private init; } = DateTimeOffset.Now;
    public bool IsGrounded => KnowledgeBase is not null;
    public bool IsRemoved => Volatile.Read(ref _disposed) != 0;

    /// <summary>The summary of dropped turns (with <see cref="Summarize"/>), carried in the system message.</summary>
    public string? Summary
    {
        get { lock (_gate) return _summary; }
    }

    /// <summary>The history the next prompt starts from (user and assistant messages, oldest first).</summary>
    public IReadOnlyList<ChatMessage> Messages
    {
        get { lock (_gate) return _history.ToArray(); }
    }

    /// <summary>Every turn so far, also those dropped from the history.</summary>
    public IReadOnlyList<ChatTurn> Turns
    {
        get { lock (_gate) return _turns.ToArray(); }
    }

    public int TurnCount
    {
        get { lock (_gate) return _turns.Count; }
    }

    /// <summary>Tokens the chat holds evaluated in its model's KV cache.</summary>
    public int KeptTokens
    {
        get { lock (_gate) return _sequence?.KeptTokens ?? 0; }
    }

    /// <summary>Sends <paramref name="request"/>'s message and streams the reply; the final chunk carries the turn,
    /// which is then part of the history. A reply cancelled after some text is kept (FinishReason Cancelled).</summary>
    /// <exception cref="ChatModelRemovedException">The chat's model was removed.</exception>
    /// <exception cref="ChatBudgetException">The message cannot fit the context even without history.</exception>
    public IEnumerable<ChatChunk> Stream(ChatTurnRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (string.IsNullOrWhiteSpace(request.Message)) throw new ArgumentException("The message is empty.", nameof(request));
        ArgumentNullException.ThrowIfNull(request.Sampling);
        request.Sampling.Validate();
        if (request.Top < 1) throw new ArgumentOutOfRangeException(nameof(request), "Top must be at least 1.");
        if (IsGrounded && request.Retriever is null) throw new ArgumentException($"Chat '{Name}' is grounded: the turn needs a retriever over its knowledge base.", nameof(request));
        ThrowIfUnusable();
        return Run(request, cancellationToken);
    }

    /// <summary>Sends a message and returns the finished turn; <paramref name="onText"/> receives the reply as it comes.</summary>
    public ChatTurn Send(ChatTurnRequest request, CancellationToken cancellationToken = default, Action<string>? onText = null)
    {
        foreach (var chunk in Stream(request, cancellationToken))
        {
            if (chunk.Turn is not null) return chunk.Turn;
            if (chunk.Text.Length > 0) onText?.Invoke(chunk.Text);
        }
        throw new InvalidOperationException("The turn ended without a result.");
    }

    /// <summary>Forgets the history and summary (the system message stays); the kept cache is reused for the system part.</summary>
    public void Reset()
    {
        lock (_gate)
        {
            _history.Clear();
            _summary = null;
        }
    }

    /// <summary>What Export-CkChat saves.</summary>
    public ChatTranscript Export()
    {
        lock (_gate)
        {
            return new ChatTranscript
            {
                Name = Name,
                Model = Model.Name,
                System = System,
                KnowledgeBase = KnowledgeBase,
                Summarize = Summarize,
                Summary = _summary,
                Created = Created,
                Messages = _history.ToArray(),
                Turns = _turns.ToArray(),
            };
        }
    }

    private void ThrowIfUnusable()
    {
        if (IsRemoved) throw new ChatRemovedException(Name);
        if (Model.IsDisposed) throw new ChatModelRemovedException(Name, Model.Name);
    }

    private IEnumerable<ChatChunk> Run(ChatTurnRequest request, CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _life.Token);
        var token = linked.Token;
        try { _turnGate.Wait(token); }
        catch (OperationCanceledException) when (_life.IsCancellationRequested)
        {
            throw new ChatRemovedException(Name);
        }
        try
        {
            var clock = Stopwatch.StartNew();
            var prepared = Prepare(request, token);
            if (prepared.Notice is not null) yield return new ChatChunk(string.Empty, Notice: prepared.Notice);

            CompletionResult? result = null;
            foreach (var chunk in Sequence().Stream(prepared.Completion, token))
            {
                if (chunk.Result is not null) { result = chunk.Result; break; }
                if (chunk.Text.Length > 0) yield return new ChatChunk(chunk.Text);
            }
            if (result is null) throw new InvalidOperationException("The completion ended without a result.");
            clock.Stop();

            var turn = Record(request, prepared, result, clock.Elapsed);
            yield return new ChatChunk(string.Empty, turn);
        }
        finally
        {
            _turnGate.Release();
        }
    }

    /// <summary>The sequence, opened on first use (a chat whose model was removed meanwhile says so).</summary>
    private IChatSequence Sequence()
    {
        lock (_gate)
        {
            if (_sequence is not null) return _sequence;
            try { return _sequence = Model.OpenSequence(); }
            catch (ObjectDisposedException) { throw new ChatModelRemovedException(Name, Model.Name); }
        }
    }

    /// <summary>A turn's prompt: the messages to send, after dropping (or summarising) history that does not fit.</summary>
    private sealed record PreparedTurn(CompletionRequest Completion, int Dropped, bool Summarized, string? Notice,
        string? StandaloneQuestion, IReadOnlyList<PromptPassage> Passages);

    private PreparedTurn Prepare(ChatTurnRequest request, CancellationToken cancellationToken)
    {
        List<ChatMessage> history;
        string? summary;
        lock (_gate)
        {
            history = [.. _history];
            summary = _summary;
        }

        string? standalone = null;
        IReadOnlyList<RagPassage> passages = [];
        RagPromptBuilder? builder = null;
        if (IsGrounded)
        {
            standalone = history.Count == 0 ? request.Message : ChatGrounding.RewriteQuestion(Model, history, request.Message, cancellationToken);
            passages = request.Retriever!.Retrieve(new RagRequest
            {
                Question = standalone, Top = request.Top, Mode = request.Mode, MinScore = request.MinScore, Filter = request.Filter,
            }, cancellationToken).Where(p => p.Score >= request.MinScore).Take(request.Top).ToArray();
            builder = new RagPromptBuilder(System, boundary: RagPromptBuilder.NewBoundary(passages), defuser: ModelControlTokens.DefuserFor(Model));
        }
        var system = builder?.System ?? System;
        var budget = Model.ContextSize - request.Sampling.MaxTokens - SafetyMargin;

        // Drop the oldest turns when the prompt (without passages) does not fit; then down to half the room, so the
        // next turns fit again and the kept cache is rebuilt once, not every turn.
        var dropped = new List<ChatMessage>();
        string BareUser() => builder?.BuildUser(request.Message, []) ?? request.Message;
        int Count(List<ChatMessage> messages, string? withSummary) =>
            Model.CountTokens(Model.Format(Completion(request, SystemWith(system, withSummary), messages, BareUser())).Text);
        if (Count(history, summary) > budget)
        {
            while (history.Count > 0 && Count(history, summary) > budget / 2) DropOldestTurn(history, dropped);
        }

        IReadOnlyList<PromptPassage> included = [];
        string user;
        while (true)
        {
            if (builder is null)
            {
                if (Count(history, summary) > budget)
                {
                    if (history.Count == 0) throw TooLong(budget, Count(history, summary));
                    DropOldestTurn(history, dropped);
                    continue;
                }
                user = request.Message;
                break;
            }
            try
            {
                var fitted = PassageFitter.Fit(passages,
                    chosen => Model.Format(Completion(request, SystemWith(system, summary), history, builder.BuildUser(request.Message, chosen))).Text,
                    Model.CountTokens, Model.ContextSize, request.Sampling.MaxTokens, SafetyMargin);
                included = fitted.Passages;
                user = builder.BuildUser(request.Message, included);
                break;
            }
            catch (RagBudgetException e)
            {
                if (history.Count == 0) throw new ChatBudgetException(e.Message);
                DropOldestTurn(history, dropped);
            }
        }

        var summarized = false;
        string? notice = null;
        if (dropped.Count > 0)
        {
            var turns = dropped.Count(m => m.Role == "user");
            if (Summarize)
            {
                summary = ChatGrounding.Summarize(Model, summary, dropped, cancellationToken);
                summarized = true;
                // The summary takes room too: drop more if it no longer fits (rare: it is capped at a few sentences).
                while (history.Count > 0 && Count(history, summary) > budget) DropOldestTurn(history, dropped);
            }
            notice = $"Chat '{Name}': the history outgrew the context of model '{Model.Name}' ({Model.ContextSize} tokens); " +
                $"the {turns} oldest turn(s) were {(summarized ? "summarised into the system message" : "dropped")} (the system message is kept).";
            lock (_gate)
            {
                _history.RemoveRange(0, Math.Min(dropped.Count, _history.Count));
                _summary = summary;
            }
        }

        var completion = Completion(request, SystemWith(system, summary), history, user);
        return new PreparedTurn(completion, dropped.Count(m => m.Role == "user"), summarized, notice, standalone, included);
    }

    private CompletionRequest Completion(ChatTurnRequest request, string? system, List<ChatMessage> history, string user) =>
        new(request.Sampling)
        {
            System = system,
            Messages = [.. history, new ChatMessage("user", user)],
            CachePrompt = ReuseState,
        };

    private static string? SystemWith(string? system, string? summary) =>
        summary is null ? system
        : system is null ? $"{ChatGrounding.SummaryHeading}\n{summary}"
        : $"{system}\n\n{ChatGrounding.SummaryHeading}\n{summary}";

    /// <summary>Moves the oldest exchange (a user message and the replies up to the next user message) to <paramref name="dropped"/>.</summary>
    private static void DropOldestTurn(List<ChatMessage> history, List<ChatMessage> dropped)
    {
        var end = 1;
        while (end < history.Count && history[end].Role != "user") end++;
        dropped.AddRange(history.Take(end));
        history.RemoveRange(0, end);
    }

    private ChatBudgetException TooLong(int budget, int tokens) => new(
        $"The message needs {tokens} prompt tokens with the system message, but the context of model '{Model.Name}' ({Model.ContextSize} tokens) " +
        $"minus MaxTokens and a {SafetyMargin}-token margin leaves {Math.Max(budget, 0)}. Shorten it, lower -MaxTokens, or import the model with a larger -ContextSize.");

    private ChatTurn Record(ChatTurnRequest request, PreparedTurn prepared, CompletionResult result, TimeSpan duration)
    {
        var (cited, unknown) = IsGrounded ? CitationParser.Classify(result.Text, prepared.Passages.Count) : ([], []);
        lock (_gate)
        {
            var turn = new ChatTurn
            {
                Chat = Name,
                Number = _turns.Count + 1,
                Message = request.Message,
                Text = result.Text,
                Model = result.Model,
                PromptTokens = result.PromptTokens,
                CachedPromptTokens = result.CachedPromptTokens,
                EvaluatedTokens = result.PromptTokens - result.CachedPromptTokens,
                CompletionTokens = result.CompletionTokens,
                TokensPerSecond = result.TokensPerSecond,
                TimeToFirstToken = result.TimeToFirstToken,
                Duration = duration,
                FinishReason = result.FinishReason,
                DroppedTurns = prepared.Dropped,
                Summarized = prepared.Summarized,
                StandaloneQuestion = prepared.StandaloneQuestion,
                Citations = prepared.Passages.Select(RagEngine.ToCitation).ToArray(),
                CitedNumbers = cited,
                UnknownCitations = unknown,
            };
            // A reply cancelled before any text leaves the conversation as it was.
            if (result.FinishReason != FinishReason.Cancelled || result.Text.Length > 0)
            {
                _history.Add(new ChatMessage("user", request.Message));
                _history.Add(new ChatMessage("assistant", result.Text));
                _turns.Add(turn);
            }
            return turn;
        }
    }

    /// <summary>Stops a running turn, waits for it, and frees the chat's native state.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _life.Cancel();
        _turnGate.Wait();
        IChatSequence? sequence;
        lock (_gate)
        {
            sequence = _sequence;
            _sequence = null;
        }
        sequence?.Dispose();
        _turnGate.Release();
    }

    public override string ToString() => $"{Name} ({Model.Name}, {TurnCount} turns)";
}
