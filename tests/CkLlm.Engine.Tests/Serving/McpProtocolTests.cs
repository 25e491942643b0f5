using System.IO.Pipelines;
using System.Text.Json;
using System.Text.Json.Nodes;
using CkLlm.Engine.Inference;
using CkLlm.Engine.Serving.Mcp;
using CkLlm.Engine.Session;
using CkLlm.Engine.Tests.Rag;

namespace CkLlm.Engine.Tests.Serving;

/// <summary>
/// The tools as the SDK serves them, over a pair of pipes carrying newline-delimited JSON-RPC, exactly as the stdio
/// transport does: handshake, tool list with schemas, structured results and tool errors, end of input.
/// </summary>
public sealed class McpProtocolTests(McpKnowledgeFixture fixture) : IClassFixture<McpKnowledgeFixture>
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task AClientListsTheThreeToolsWithTheirArgumentSchemas()
    {
        await using var session = await Session.Start(fixture.Tools(() => throw new ModelNotLoadedException(CkSession.NoModelMessage)));
        var tools = (await session.Request("tools/list", new JsonObject()))["tools"]!.AsArray();
        Assert.Equal([McpKnowledgeServer.SearchToolName, McpKnowledgeServer.AskToolName, McpKnowledgeServer.ListToolName],
            tools.Select(t => (string)t!["name"]!));
        var search = tools[0]!;
        Assert.Equal(["query"], search["inputSchema"]!["required"]!.AsArray().Select(n => (string)n!));
        Assert.Equal(["query", "top", "filter", "knowledgeBase"], search["inputSchema"]!["properties"]!.AsObject().Select(p => p.Key));
        Assert.Equal(5, (int)search["inputSchema"]!["properties"]!["top"]!["default"]!);
        Assert.True((bool)search["annotations"]!["readOnlyHint"]!);
        Assert.NotNull(search["outputSchema"]);
        Assert.Equal(["question"], tools[1]!["inputSchema"]!["required"]!.AsArray().Select(n => (string)n!));
        Assert.Contains("maxTokens", tools[1]!["inputSchema"]!["properties"]!.AsObject().Select(p => p.Key));
    }

    [Fact]
    public async Task ToolCallsReturnStructuredResultsAndTheSameJsonAsText()
    {
        var model = new FakeGenerator(4096, "Sourdough [1].");
        await using var session = await Session.Start(fixture.Tools(() => model));
        var search = await session.CallTool(McpKnowledgeServer.SearchToolName, new JsonObject { ["query"] = "sourdough starter", ["top"] = 2 });
        Assert.Null(search["isError"]);
        var hits = search["structuredContent"]!["hits"]!.AsArray();
        Assert.InRange(hits.Count, 1, 2);
        Assert.EndsWith("bread.md", (string)hits[0]!["source"]!);
        var text = JsonNode.Parse((string)search["content"]![0]!["text"]!)!;
        Assert.True(JsonNode.DeepEquals(search["structuredContent"], text));

        var ask = await session.CallTool(McpKnowledgeServer.AskToolName, new JsonObject { ["question"] = "How does sourdough rise?", ["knowledgeBase"] = "kitchen" });
        Assert.Equal("Sourdough [1].", (string)ask["structuredContent"]!["answer"]!);
        var citation = ask["structuredContent"]!["citations"]![0]!;
        Assert.True((bool)citation["cited"]!);
        Assert.EndsWith("bread.md", (string)citation["source"]!);

        var list = await session.CallTool(McpKnowledgeServer.ListToolName, new JsonObject());
        Assert.Equal(["geology", "kitchen"], list["structuredContent"]!["knowledgeBases"]!.AsArray().Select(k => (string)k!["name"]!));
    }

    [Fact]
    public async Task AFailingToolIsAnErrorResultWithItsMessageAndTheServerGoesOn()
    {
        await using var session = await Session.Start(fixture.Tools(() => throw new ModelNotLoadedException(CkSession.NoModelMessage)));
        var ask = await session.CallTool(McpKnowledgeServer.AskToolName, new JsonObject { ["question"] = "Which volcano?" });
        Assert.True((bool)ask["isError"]!);
        Assert.Contains(KnowledgeTools.NoModelMessage, (string)ask["content"]![0]!["text"]!);
        var badTop = await session.CallTool(McpKnowledgeServer.SearchToolName, new JsonObject { ["query"] = "volcano", ["top"] = 500 });
        Assert.True((bool)badTop["isError"]!);
        Assert.Contains("top must be between 1 and 50; got 500.", (string)badTop["content"]![0]!["text"]!);
        var search = await session.CallTool(McpKnowledgeServer.SearchToolName, new JsonObject { ["query"] = "volcano" });
        Assert.Null(search["isError"]);
    }

    [Fact]
    public async Task AClientsCancellationReachesTheGenerationAndTheServerGoesOn()
    {
        var model = new WaitingModel();
        await using var session = await Session.Start(fixture.Tools(() => model));
        var askId = session.TakeId();
        await session.Send(new JsonObject
        {
            ["jsonrpc"] = "2.0", ["id"] = askId, ["method"] = "tools/call",
            ["params"] = new JsonObject { ["name"] = McpKnowledgeServer.AskToolName, ["arguments"] = new JsonObject { ["question"] = "Which volcano?" } },
        });
        await model.Started.Task.WaitAsync(Deadline);
        await session.Send(new JsonObject
        {
            ["jsonrpc"] = "2.0", ["method"] = "notifications/cancelled", ["params"] = new JsonObject { ["requestId"] = askId },
        });
        await model.Cancelled.Task.WaitAsync(Deadline);
        var search = await session.CallTool(McpKnowledgeServer.SearchToolName, new JsonObject { ["query"] = "volcano" });
        Assert.Null(search["isError"]);
    }

    [Fact]
    public async Task AskWaitsForAnAdmissionSlotAndAFullQueueIsAToolError()
    {
        var model = new FakeGenerator(4096, "Kilauea [1].");
        var slotsTaken = 0;
        var slotsReleased = 0;
        var full = false;
        Task<IDisposable?> Admit(CancellationToken _)
        {
            if (full) return Task.FromResult<IDisposable?>(null);
            slotsTaken++;
            return Task.FromResult<IDisposable?>(new Released(() => slotsReleased++));
        }
        await using var session = await Session.Start(fixture.Tools(() => model), admitGeneration: Admit);
        var answered = await session.CallTool(McpKnowledgeServer.AskToolName, new JsonObject { ["question"] = "Which volcano?" });
        Assert.Null(answered["isError"]);
        Assert.Equal((1, 1, 1), (slotsTaken, slotsReleased, model.Calls));

        full = true;
        var refused = await session.CallTool(McpKnowledgeServer.AskToolName, new JsonObject { ["question"] = "Which volcano?" });
        Assert.True((bool)refused["isError"]!);
        Assert.Contains(McpKnowledgeServer.BusyMessage, (string)refused["content"]![0]!["text"]!);
        Assert.Equal(1, model.Calls);
        // Search does not generate: no slot needed.
        Assert.Null((await session.CallTool(McpKnowledgeServer.SearchToolName, new JsonObject { ["query"] = "volcano" }))["isError"]);
    }

    private sealed class Released(Action onDispose) : IDisposable
    {
        public void Dispose() => onDispose();
    }

    [Fact]
    public async Task TheServerEndsWhenTheClientClosesItsInput()
    {
        var session = await Session.Start(fixture.Tools(() => new FakeGenerator(4096)));
        session.CloseInput();
        await session.Server.WaitAsync(Deadline);
        Assert.True(session.Server.IsCompletedSuccessfully);
        await session.DisposeAsync();
    }

    [Fact]
    public async Task CancellingTheRunEndsTheServerWhileItWaitsForInput()
    {
        using var cancel = new CancellationTokenSource();
        var session = await Session.Start(fixture.Tools(() => new FakeGenerator(4096)), cancel.Token);
        cancel.Cancel();
        await session.Server.WaitAsync(Deadline);
        Assert.True(session.Server.IsCompletedSuccessfully);
        await session.DisposeAsync();
    }

    /// <summary>A server on in-memory pipes and a line-by-line JSON-RPC client that has done the handshake.</summary>
    private sealed class Session : IAsyncDisposable
    {
        private readonly Pipe _toServer = new();
        private readonly Pipe _fromServer = new();
        private readonly StreamWriter _writer;
        private readonly StreamReader _reader;
        private int _nextId;

        private Session(KnowledgeTools tools, Func<CancellationToken, Task<IDisposable?>>? admitGeneration, CancellationToken cancellationToken)
        {
            _writer = new StreamWriter(_toServer.Writer.AsStream()) { AutoFlush = true };
            _reader = new StreamReader(_fromServer.Reader.AsStream());
            Server = McpKnowledgeServer.RunAsync(tools, _toServer.Reader.AsStream(), _fromServer.Writer.AsStream(), admitGeneration, cancellationToken);
        }

        public Task Server { get; }

        public static async Task<Session> Start(KnowledgeTools tools, CancellationToken cancellationToken = default,
            Func<CancellationToken, Task<IDisposable?>>? admitGeneration = null)
        {
            var session = new Session(tools, admitGeneration, cancellationToken);
            var init = await session.Request("initialize", new JsonObject
            {
                ["protocolVersion"] = "2025-06-18",
                ["capabilities"] = new JsonObject(),
                ["clientInfo"] = new JsonObject { ["name"] = "xunit", ["version"] = "1" },
            });
            Assert.Equal(McpKnowledgeServer.ServerName, (string)init["serverInfo"]!["name"]!);
            await session.Send(new JsonObject { ["jsonrpc"] = "2.0", ["method"] = "notifications/initialized" });
            return session;
        }

        public Task<JsonNode> CallTool(string name, JsonObject arguments) =>
            Request("tools/call", new JsonObject { ["name"] = name, ["arguments"] = arguments });

        public async Task<JsonNode> Request(string method, JsonObject parameters)
        {
            var id = ++_nextId;
            await Send(new JsonObject { ["jsonrpc"] = "2.0", ["id"] = id, ["method"] = method, ["params"] = parameters });
            while (true)
            {
                var line = await _reader.ReadLineAsync().WaitAsync(Deadline) ?? throw new EndOfStreamException("The server closed its output.");
                var message = JsonNode.Parse(line)!;
                Assert.Equal("2.0", (string)message["jsonrpc"]!);
                if (message["id"] is null) continue; // a notification (e.g. a log message)
                if ((int)message["id"]! != id) continue; // the answer to an earlier request that was given up on
                Assert.Null(message["error"]);
                return message["result"]!;
            }
        }

        /// <summary>An id for a request sent with <see cref="Send"/> whose answer is not awaited.</summary>
        public int TakeId() => ++_nextId;

        public Task Send(JsonObject message) => _writer.WriteLineAsync(message.ToJsonString(JsonSerializerOptions.Default));

        /// <summary>End of input, as when a client closes the server's stdin.</summary>
        public void CloseInput() => _toServer.Writer.Complete();

        public async ValueTask DisposeAsync()
        {
            CloseInput();
            try { await Server.WaitAsync(Deadline); } catch (OperationCanceledException) { }
            _reader.Dispose();
        }
    }

    /// <summary>A model whose generation waits until it is cancelled, and says when it started and when it was cancelled.</summary>
    private sealed class WaitingModel : IChatModel
    {
        private readonly FakeGenerator _format = new(4096);

        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource Cancelled { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public string Name => "waiting";
        public bool IsDisposed => false;
        public int ContextSize => _format.ContextSize;
        public int CountTokens(string prompt) => _format.CountTokens(prompt);
        public FormattedPrompt Format(CompletionRequest request) => _format.Format(request);

        public async IAsyncEnumerable<CompletionChunk> StreamAsync(CompletionRequest request,
            [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            using var registration = cancellationToken.Register(() => Cancelled.TrySetResult());
            Started.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
            yield break;
        }

        public void Dispose() { }
    }
}
