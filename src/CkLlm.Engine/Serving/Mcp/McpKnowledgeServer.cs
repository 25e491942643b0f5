using System.ComponentModel;
using System.Text.Encodings.Web;
using System.Text.Json;
using CkLlm.Engine.Inference;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace CkLlm.Engine.Serving.Mcp;

/// <summary>
/// The MCP face of <see cref="KnowledgeTools"/>: the three tools as the official C# SDK's <see cref="McpServerTool"/>s
/// (names, descriptions, JSON schemas of arguments and structured results) and a server over any pair of streams.
/// Transports (stdio here, streamable HTTP in the HTTP server) share these definitions.
/// </summary>
public static class McpKnowledgeServer
{
    public const string ServerName = "ckllm";
    public const string SearchToolName = "search_knowledge";
    public const string AskToolName = "ask_knowledge";
    public const string ListToolName = "list_knowledge_sources";

    private const string Instructions =
        "Tools over local CkLlm knowledge bases (documents indexed for hybrid keyword + vector search). Use search_knowledge " +
        "to find passages with their source, heading and line numbers; ask_knowledge for an answer written by the local model " +
        "that cites passages as [n]; list_knowledge_sources to see which documents are indexed.";

    public const string BusyMessage = "The server is busy generating other answers and its queue is full. Retry later.";

    /// <summary>The tools, ready for an SDK server's tool collection.</summary>
    /// <param name="admitGeneration">Optional: waits for a generation slot before ask_knowledge runs (the HTTP server's
    /// admission queue); a null slot means the queue is full and the call is refused with <see cref="BusyMessage"/>.</param>
    internal static IReadOnlyList<McpServerTool> CreateTools(KnowledgeTools tools, Func<CancellationToken, Task<IDisposable?>>? admitGeneration = null)
    {
        ArgumentNullException.ThrowIfNull(tools);
        var methods = new ToolMethods(tools, admitGeneration);
        return
        [
            McpServerTool.Create(methods.SearchKnowledge, Options(SearchToolName, "Search knowledge",
                "Searches the served knowledge bases (hybrid keyword + vector search) and returns the best passages, each with " +
                "its source file, heading, line range or page, score and text.")),
            McpServerTool.Create(methods.AskKnowledge, Options(AskToolName, "Ask the knowledge base",
                "Answers a question from the served knowledge bases with the server's local model: retrieves passages, asks the " +
                "model to answer only from them, and returns the answer with numbered [n] citations (source, heading, lines/page, " +
                "score). Fails with a clear message when the server has no model.")),
            McpServerTool.Create(methods.ListKnowledgeSources, Options(ListToolName, "List knowledge sources",
                "Lists the served knowledge bases and the documents (sources) each one holds, with format, chunk count and size.")),
        ];
    }

    /// <summary>Puts this server's identity, instructions and tools into <paramref name="options"/> (the stdio server's
    /// own options, or the ones ASP.NET Core's MCP transport configures).</summary>
    internal static void Configure(McpServerOptions options, KnowledgeTools tools, Func<CancellationToken, Task<IDisposable?>>? admitGeneration = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.ServerInfo = new Implementation { Name = ServerName, Version = typeof(McpKnowledgeServer).Assembly.GetName().Version?.ToString(3) ?? "0.0.0" };
        options.ServerInstructions = Instructions;
        options.ToolCollection ??= [];
        foreach (var tool in CreateTools(tools, admitGeneration)) options.ToolCollection.Add(tool);
    }

    /// <summary>
    /// Serves the tools over newline-delimited JSON-RPC on <paramref name="input"/> / <paramref name="output"/> until the
    /// input ends (the client closed it) or <paramref name="cancellationToken"/> is cancelled.
    /// </summary>
    public static Task RunAsync(KnowledgeTools tools, Stream input, Stream output, CancellationToken cancellationToken) =>
        RunAsync(tools, input, output, admitGeneration: null, cancellationToken);

    /// <inheritdoc cref="RunAsync(KnowledgeTools, Stream, Stream, CancellationToken)"/>
    /// <param name="admitGeneration">See <see cref="CreateTools"/>.</param>
    internal static async Task RunAsync(KnowledgeTools tools, Stream input, Stream output,
        Func<CancellationToken, Task<IDisposable?>>? admitGeneration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        var options = new McpServerOptions();
        Configure(options, tools, admitGeneration);
        var transport = new StreamServerTransport(input, output, ServerName);
        var server = McpServer.Create(transport, options);
        try
        {
            // The SDK's read loop may sit in a blocking read of the input (a console stream ignores cancellation), so a
            // cancelled run returns at once instead of waiting for the next line.
            await server.RunAsync(cancellationToken).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            var disposal = server.DisposeAsync().AsTask();
            if (await Task.WhenAny(disposal, Task.Delay(TimeSpan.FromSeconds(2), CancellationToken.None)).ConfigureAwait(false) == disposal)
                await disposal.ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Serves the tools over this process's stdin/stdout, which <paramref name="stdout"/> has claimed (nothing else writes
    /// there meanwhile), until stdin ends or <paramref name="cancellationToken"/> is cancelled (Ctrl+C).
    /// </summary>
    public static async Task RunStdioAsync(KnowledgeTools tools, StandardOutputClaim stdout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stdout);
        using var stdin = Console.OpenStandardInput();
        await RunAsync(tools, stdin, stdout.Protocol, cancellationToken).ConfigureAwait(false);
    }

    private static McpServerToolCreateOptions Options(string name, string title, string description) => new()
    {
        Name = name,
        Title = title,
        Description = description,
        ReadOnly = true,
        Destructive = false,
        Idempotent = name != AskToolName, // a sampled answer may differ between calls
        OpenWorld = false,
        UseStructuredContent = true,
        SerializerOptions = ResultJson,
    };

    /// <summary>The SDK's JSON settings, with '&gt;', '&amp;', quotes and non-ASCII text written as they are: the text
    /// content is read by language models, which should see "Volcanoes &gt; Kilauea", not "\u003E".</summary>
    private static readonly JsonSerializerOptions ResultJson = new(McpJsonUtilities.DefaultOptions)
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>The tools' signatures: the SDK builds each input schema from the parameters (names, defaults,
    /// descriptions). Work runs on the thread pool so a long answer never holds up the message loop.</summary>
    private sealed class ToolMethods(KnowledgeTools tools, Func<CancellationToken, Task<IDisposable?>>? admitGeneration)
    {
        public Task<SearchKnowledgeResult> SearchKnowledge(
            [Description("What to look for: a question or keywords.")] string query,
            [Description("How many passages to return (1-50).")] int top = KnowledgeTools.DefaultTop,
            [Description("Metadata every passage must carry, as key/value strings (e.g. {\"lang\": \"en\"}).")] Dictionary<string, string>? filter = null,
            [Description("Search only this knowledge base (a name from list_knowledge_sources); default: all served.")] string? knowledgeBase = null,
            CancellationToken cancellationToken = default) =>
            Task.Run(() => tools.Search(query, top, filter, knowledgeBase, cancellationToken), cancellationToken);

        public async Task<AskKnowledgeResult> AskKnowledge(
            [Description("The question to answer from the knowledge bases.")] string question,
            [Description("How many passages to retrieve for the answer (1-50).")] int top = KnowledgeTools.DefaultTop,
            [Description("Metadata every passage must carry, as key/value strings.")] Dictionary<string, string>? filter = null,
            [Description("Answer only from this knowledge base; default: all served.")] string? knowledgeBase = null,
            [Description("Longest answer in tokens (1-4096).")] int maxTokens = SamplingOptions.DefaultMaxTokens,
            [Description("Sampling temperature; 0 is deterministic.")] float temperature = SamplingOptions.DefaultTemperature,
            CancellationToken cancellationToken = default)
        {
            using var slot = admitGeneration is null ? null
                : await admitGeneration(cancellationToken).ConfigureAwait(false) ?? throw new McpException(BusyMessage);
            return await Task.Run(() => tools.Ask(question, top, filter, knowledgeBase, maxTokens, temperature, cancellationToken), cancellationToken)
                .ConfigureAwait(false);
        }

        public Task<ListKnowledgeSourcesResult> ListKnowledgeSources(
            [Description("List only this knowledge base; default: all served.")] string? knowledgeBase = null,
            [Description("Most sources to list per knowledge base (1-10000).")] int limit = KnowledgeTools.DefaultListLimit,
            CancellationToken cancellationToken = default) =>
            Task.Run(() => tools.ListSources(knowledgeBase, limit), cancellationToken);
    }
}
