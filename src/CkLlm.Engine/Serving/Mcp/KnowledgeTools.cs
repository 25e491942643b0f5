using CkLlm.Engine.Inference;
using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Rag;
using CkLlm.Engine.Session;
using ModelContextProtocol;

namespace CkLlm.Engine.Serving.Mcp;

/// <summary>
/// What the MCP tools do, independent of the transport (stdio or HTTP): search the served knowledge bases, answer a
/// question from them with citations through <see cref="RagEngine"/>, list their sources. Errors a client should read
/// (bad arguments, no model, a question too long for the context) are <see cref="McpException"/>s, whose message the
/// SDK returns to the client as the tool's error result.
/// </summary>
public sealed class KnowledgeTools
{
    public const int DefaultTop = 5;
    public const int MaxTop = 50;
    public const int DefaultListLimit = 200;
    public const int MaxListLimit = 10_000;
    public const int MaxAnswerTokens = 4096;

    public const string NoModelMessage =
        "ask_knowledge needs a chat model, and this server has none: start it with -Model <path to a GGUF file or the name of a " +
        "model loaded with Import-CkModel>. search_knowledge and list_knowledge_sources work without a model.";

    public const string NoKnowledgeBaseMessage =
        "This server serves no knowledge base: start it with -KnowledgeBase <directory made by Add-CkKnowledge>.";

    private readonly IReadOnlyList<ServedKnowledgeBase> _knowledgeBases;
    private readonly Func<IChatModel> _model;

    /// <param name="knowledgeBases">Names must be unique (see <see cref="NameKnowledgeBases"/>). With none, the tools that
    /// need one say so (an HTTP server may be started without knowledge bases).</param>
    /// <param name="model">The chat model ask_knowledge uses, resolved per call; throws
    /// <see cref="ModelNotLoadedException"/> when there is none.</param>
    public KnowledgeTools(IReadOnlyList<ServedKnowledgeBase> knowledgeBases, Func<IChatModel> model)
    {
        ArgumentNullException.ThrowIfNull(knowledgeBases);
        ArgumentNullException.ThrowIfNull(model);
        var duplicate = knowledgeBases.GroupBy(k => k.Name, StringComparer.OrdinalIgnoreCase).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new ArgumentException($"Two knowledge bases are named '{duplicate.Key}'.", nameof(knowledgeBases));
        _knowledgeBases = knowledgeBases;
        _model = model;
    }

    public IReadOnlyList<ServedKnowledgeBase> KnowledgeBases => _knowledgeBases;

    /// <summary>Names for knowledge bases: each directory's own name, made unique with -2, -3, ... in order.</summary>
    public static IReadOnlyList<ServedKnowledgeBase> NameKnowledgeBases(IEnumerable<KnowledgeBase> knowledgeBases)
    {
        ArgumentNullException.ThrowIfNull(knowledgeBases);
        var taken = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var named = new List<ServedKnowledgeBase>();
        foreach (var kb in knowledgeBases)
        {
            var baseName = Path.GetFileName(Path.TrimEndingDirectorySeparator(kb.Directory));
            if (baseName.Length == 0) baseName = "knowledge";
            var name = baseName;
            for (var n = 2; !taken.Add(name); n++) name = $"{baseName}-{n}";
            named.Add(new ServedKnowledgeBase(name, kb));
        }
        return named;
    }

    /// <summary>search_knowledge: hybrid search over one knowledge base or all of them (merged by score).</summary>
    public SearchKnowledgeResult Search(string query, int top = DefaultTop, IReadOnlyDictionary<string, string>? filter = null,
        string? knowledgeBase = null, CancellationToken cancellationToken = default)
    {
        RequireText(query, "query");
        RequireRange(top, 1, MaxTop, "top");
        var hits = Run(() => SearchServed(Select(knowledgeBase), query, top, filter, cancellationToken));
        return new SearchKnowledgeResult(query, hits.Select((h, i) => new KnowledgeToolHit
        {
            Rank = i + 1, Score = h.Hit.Score, KnowledgeBase = h.KnowledgeBase, Source = h.Hit.Source, Title = h.Hit.Title,
            Heading = h.Hit.Heading, Lines = h.Hit.Lines, Page = h.Hit.Page, Text = h.Hit.Text,
            Metadata = h.Hit.Metadata.Count == 0 ? null : h.Hit.Metadata,
        }).ToArray());
    }

    /// <summary>ask_knowledge: retrieval, a prompt fitted to the model's context, an answer citing [n], checked citations.</summary>
    public AskKnowledgeResult Ask(string question, int top = DefaultTop, IReadOnlyDictionary<string, string>? filter = null,
        string? knowledgeBase = null, int maxTokens = SamplingOptions.DefaultMaxTokens, float temperature = SamplingOptions.DefaultTemperature,
        CancellationToken cancellationToken = default)
    {
        RequireText(question, "question");
        RequireRange(top, 1, MaxTop, "top");
        RequireRange(maxTokens, 1, MaxAnswerTokens, "maxTokens");
        if (!float.IsFinite(temperature) || temperature is < 0 or > 100)
            throw new McpException("temperature must be between 0 and 100.");
        var served = Select(knowledgeBase);
        IChatModel model;
        try { model = _model(); }
        catch (ModelNotLoadedException) { throw new McpException(NoModelMessage); }

        var request = new RagRequest
        {
            Question = question, Top = top, Filter = filter,
            Generation = new CompletionRequest { MaxTokens = maxTokens, Temperature = temperature },
        };
        var answer = Run(() => RagEngine.Answer(request, new ServedRetriever(served), model, cancellationToken));
        cancellationToken.ThrowIfCancellationRequested();
        var cited = answer.CitedNumbers.ToHashSet();
        return new AskKnowledgeResult
        {
            Question = question,
            Answer = answer.Answer ?? "",
            NoKnowledge = answer.NoKnowledge,
            Model = answer.Model,
            Citations = answer.Citations.Select(c => new KnowledgeToolCitation
            {
                Number = c.Number, Source = c.Source, Heading = c.Heading, Lines = c.Lines, Page = c.Page, Score = c.Score, Cited = cited.Contains(c.Number),
            }).ToArray(),
            UnknownCitations = answer.UnknownCitations,
            FinishReason = answer.FinishReason?.ToString(),
        };
    }

    /// <summary>list_knowledge_sources: every served knowledge base (or one) with up to <paramref name="limit"/> sources each.</summary>
    public ListKnowledgeSourcesResult ListSources(string? knowledgeBase = null, int limit = DefaultListLimit)
    {
        RequireRange(limit, 1, MaxListLimit, "limit");
        // No knowledge base served is an empty list here (the honest answer), not an error.
        var selected = _knowledgeBases.Count == 0 && string.IsNullOrEmpty(knowledgeBase) ? [] : Select(knowledgeBase);
        return Run(() => new ListKnowledgeSourcesResult(selected.Select(served =>
        {
            var sources = served.KnowledgeBase.GetSources();
            return new KnowledgeBaseListing
            {
                Name = served.Name,
                Directory = served.KnowledgeBase.Directory,
                SourceCount = sources.Count,
                Chunks = sources.Sum(s => s.Chunks),
                Truncated = sources.Count > limit,
                Sources = sources.Take(limit).Select(s => new KnowledgeToolSource
                {
                    Source = s.Source, Kind = s.Kind.ToString(), Format = s.Format, Chunks = s.Chunks, Size = s.Size, UpdatedUtc = s.UpdatedUtc,
                }).ToArray(),
            };
        }).ToArray()));
    }

    /// <summary>Hits from each of <paramref name="served"/>, best first across all of them.</summary>
    private static List<(string KnowledgeBase, KnowledgeHit Hit)> SearchServed(IReadOnlyList<ServedKnowledgeBase> served, string query,
        int top, IReadOnlyDictionary<string, string>? filter, CancellationToken cancellationToken)
    {
        var hits = new List<(string, KnowledgeHit)>();
        foreach (var kb in served)
        {
            cancellationToken.ThrowIfCancellationRequested();
            hits.AddRange(kb.KnowledgeBase.Search(query, new SearchOptions { Top = top, Filter = filter }).Select(h => (kb.Name, h)));
        }
        // Every knowledge base scores hybrid hits on the same 0-1 fused scale, so one ranking across them is meaningful.
        return hits.OrderByDescending(h => h.Item2.Score).Take(top).ToList();
    }

    private IReadOnlyList<ServedKnowledgeBase> Select(string? name)
    {
        if (_knowledgeBases.Count == 0) throw new McpException(NoKnowledgeBaseMessage);
        if (string.IsNullOrEmpty(name)) return _knowledgeBases;
        var match = _knowledgeBases.FirstOrDefault(k => string.Equals(k.Name, name, StringComparison.OrdinalIgnoreCase));
        return match is not null
            ? [match]
            : throw new McpException($"No knowledge base named '{name}' is served. Served: {string.Join(", ", _knowledgeBases.Select(k => k.Name))}.");
    }

    /// <summary>Engine failures a client can act on become tool errors with the engine's message; cancellation and
    /// anything else (a bug) pass through.</summary>
    private static T Run<T>(Func<T> work)
    {
        try { return work(); }
        catch (Exception e) when (e is ArgumentException or RagBudgetException or KnowledgeBaseException or InvalidOperationException
                                      and not ObjectDisposedException)
        {
            throw new McpException(e.Message, e);
        }
        catch (ObjectDisposedException e)
        {
            throw new McpException("The model or knowledge base was closed while the tool ran (Remove-CkModel, Remove-Module).", e);
        }
    }

    private static void RequireText(string? value, string argument)
    {
        if (string.IsNullOrWhiteSpace(value)) throw new McpException($"{argument} must not be empty.");
    }

    private static void RequireRange(int value, int min, int max, string argument)
    {
        if (value < min || value > max) throw new McpException($"{argument} must be between {min} and {max}; got {value}.");
    }

    /// <summary>RAG retrieval over the served knowledge bases, ranked together as search_knowledge ranks them.</summary>
    private sealed class ServedRetriever(IReadOnlyList<ServedKnowledgeBase> served) : IRagRetriever
    {
        public IReadOnlyList<RagPassage> Retrieve(RagRequest request, CancellationToken cancellationToken) =>
            SearchServed(served, request.Question, request.Top, request.Filter, cancellationToken)
                .Select(h => KnowledgeRagRetriever.ToPassage(h.Hit)).ToArray();
    }
}
