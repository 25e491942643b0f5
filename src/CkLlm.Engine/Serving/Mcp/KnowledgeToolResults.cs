namespace CkLlm.Engine.Serving.Mcp;

/// <summary>A knowledge base the MCP tools serve, under the name clients pass as <c>knowledgeBase</c>.</summary>
public sealed record ServedKnowledgeBase(string Name, Knowledge.KnowledgeBase KnowledgeBase);

/// <summary>search_knowledge's result: the hits, best first.</summary>
public sealed record SearchKnowledgeResult(string Query, IReadOnlyList<KnowledgeToolHit> Hits);

/// <summary>One search hit as the tools report it: where it is (source, heading, lines or page) and its text.</summary>
public sealed record KnowledgeToolHit
{
    public int Rank { get; init; }
    public double Score { get; init; }
    public required string KnowledgeBase { get; init; }
    public required string Source { get; init; }
    public string? Title { get; init; }
    public string? Heading { get; init; }
    public string? Lines { get; init; }
    public int? Page { get; init; }
    public required string Text { get; init; }
    public IReadOnlyDictionary<string, string>? Metadata { get; init; }
}

/// <summary>ask_knowledge's result: the answer with [n] markers and the numbered passages they refer to.</summary>
public sealed record AskKnowledgeResult
{
    public required string Question { get; init; }
    public required string Answer { get; init; }
    /// <summary>True when no passage matched: the model was not asked and <see cref="Answer"/> says so.</summary>
    public bool NoKnowledge { get; init; }
    public string? Model { get; init; }
    public IReadOnlyList<KnowledgeToolCitation> Citations { get; init; } = [];
    /// <summary>[n] markers in the answer that match no passage (a made-up citation).</summary>
    public IReadOnlyList<int> UnknownCitations { get; init; } = [];
    public string? FinishReason { get; init; }
}

/// <summary>A passage the answer's prompt carried; <see cref="Cited"/> when the answer refers to it.</summary>
public sealed record KnowledgeToolCitation
{
    public int Number { get; init; }
    public required string Source { get; init; }
    public string? Heading { get; init; }
    public string? Lines { get; init; }
    public int? Page { get; init; }
    public double Score { get; init; }
    public bool Cited { get; init; }
}

/// <summary>list_knowledge_sources' result: each served knowledge base and its sources.</summary>
public sealed record ListKnowledgeSourcesResult(IReadOnlyList<KnowledgeBaseListing> KnowledgeBases);

public sealed record KnowledgeBaseListing
{
    public required string Name { get; init; }
    public required string Directory { get; init; }
    public int SourceCount { get; init; }
    public int Chunks { get; init; }
    /// <summary>True when more sources exist than the listing's limit allowed.</summary>
    public bool Truncated { get; init; }
    public IReadOnlyList<KnowledgeToolSource> Sources { get; init; } = [];
}

public sealed record KnowledgeToolSource
{
    public required string Source { get; init; }
    public required string Kind { get; init; }
    public required string Format { get; init; }
    public int Chunks { get; init; }
    public long Size { get; init; }
    public DateTime UpdatedUtc { get; init; }
}
