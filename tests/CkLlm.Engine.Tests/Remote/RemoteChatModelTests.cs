using System.Net;
using System.Text.Json.Nodes;
using CkLlm.Engine.Inference;
using CkLlm.Engine.Rag;
using CkLlm.Engine.Remote;
using CkLlm.Engine.Tests.Rag;

namespace CkLlm.Engine.Tests.Remote;

public sealed class RemoteChatModelTests : IDisposable
{
    private const string Key = "sk-test-4f1c9a7e-secret";
    private readonly FakeOpenAiServer _server = new();

    public void Dispose() => _server.Dispose();

    private RemoteChatModel Connect(Func<RemoteModelOptions, RemoteModelOptions>? change = null)
    {
        var options = new RemoteModelOptions { Endpoint = _server.Endpoint, RemoteModel = "test-model", ApiKey = Key, Timeout = TimeSpan.FromSeconds(10) };
        return RemoteChatModel.Connect(change is null ? options : change(options));
    }

    private static CompletionRequest Chat(string text = "Say hello") => new() { System = "Be brief.", Prompt = text, Temperature = 0, MaxTokens = 16 };

    [Fact]
    public void Streams_a_chat_through_the_chat_endpoint_with_the_requested_sampling()
    {
        using var model = Connect();
        var pieces = new List<string>();
        var result = model.Complete(Chat() with { Seed = 42, Stop = ["\n\n"], JsonSchema = """{"type":"object"}""" }, onText: pieces.Add);

        Assert.Equal("Hello, world", result.Text);
        Assert.Equal(["Hello", ", ", "world"], pieces);
        Assert.Equal(FinishReason.Stop, result.FinishReason);
        Assert.Equal(7, result.PromptTokens);
        Assert.Equal(3, result.CompletionTokens);
        Assert.Equal("remote", result.ChatFormat);
        var body = Assert.Single(_server.Generations).Body!;
        Assert.Equal("test-model", (string?)body["model"]);
        Assert.Equal(["system", "user"], body["messages"]!.AsArray().Select(m => (string?)m!["role"]));
        Assert.Equal(0, (double)body["temperature"]!);
        Assert.Equal(16, (int)body["max_tokens"]!);
        Assert.Null(body["max_completion_tokens"]);
        Assert.Equal(42, (long)body["seed"]!);
        Assert.Equal("\n\n", (string?)body["stop"]![0]);
        Assert.Equal("json_schema", (string?)body["response_format"]!["type"]);
        Assert.True((bool)body["stream"]!);
        Assert.True((bool)body["stream_options"]!["include_usage"]!);
        Assert.Null(body["top_k"]);
    }

    [Fact]
    public void Sends_a_raw_prompt_to_the_completions_endpoint_without_a_chat_template()
    {
        _server.FinishReason = "length";
        using var model = Connect();
        var result = model.Complete(new CompletionRequest { Prompt = "Once upon a time", MaxTokens = 3, Temperature = 0 });

        Assert.Equal("Hello, world", result.Text);
        Assert.Equal(FinishReason.Length, result.FinishReason);
        Assert.Equal("none", result.ChatFormat);
        var request = Assert.Single(_server.Generations);
        Assert.Equal("/v1/completions", request.Path);
        Assert.Equal("Once upon a time", (string?)request.Body!["prompt"]);
        Assert.Equal(3, (int)request.Body["max_tokens"]!);
    }

    [Fact]
    public void Sends_the_key_as_a_bearer_token_and_never_puts_it_in_an_error()
    {
        _server.Respond = (context, _) => FakeOpenAiServer.WriteJsonAsync(context, 401, FakeOpenAiServer.Error($"Incorrect API key provided: {Key}"));
        using var model = Connect();

        var error = Assert.Throws<RemoteAuthenticationException>(() => model.Complete(Chat()));
        Assert.Equal($"Bearer {Key}", _server.Generations.Single().Authorization);
        Assert.Equal(401, error.Status);
        Assert.DoesNotContain(Key, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Key, error.ToString(), StringComparison.Ordinal); // inner exceptions included
        Assert.Contains("***", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Key, model.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Refuses_a_model_the_server_does_not_list_and_names_the_ones_it_serves()
    {
        var error = Assert.Throws<RemoteModelNotFoundException>(() => Connect(o => o with { RemoteModel = "no-such-model" }));
        Assert.Contains("test-model", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Reports_a_refused_connection_as_a_connection_error()
    {
        var closed = new Uri($"http://127.0.0.1:{FakeOpenAiServer.FreePort()}");
        Assert.Throws<RemoteConnectionException>(() => RemoteChatModel.Connect(new RemoteModelOptions { Endpoint = closed, RemoteModel = "m" }));
    }

    [Theory]
    [InlineData(429, "0")] // rate limited: waits as Retry-After says
    [InlineData(503, null)] // busy: exponential backoff
    public void Retries_a_rate_limited_or_busy_server(int status, string? retryAfter)
    {
        var calls = 0;
        var headers = retryAfter is null ? null : new Dictionary<string, string> { ["Retry-After"] = retryAfter };
        _server.Respond = (context, body) => Interlocked.Increment(ref calls) == 1
            ? FakeOpenAiServer.WriteJsonAsync(context, status, FakeOpenAiServer.Error("try later"), headers)
            : _server.StreamPiecesAsync(context, body);
        using var model = Connect();

        Assert.Equal("Hello, world", model.Complete(Chat()).Text);
        Assert.Equal(2, _server.Generations.Count());
    }

    [Fact]
    public void Does_not_wait_for_a_Retry_After_longer_than_the_limit_and_reports_when_to_retry()
    {
        _server.Respond = (context, _) => FakeOpenAiServer.WriteJsonAsync(context, 429, FakeOpenAiServer.Error("quota"),
            new Dictionary<string, string> { ["Retry-After"] = "120" });
        using var model = Connect();

        var error = Assert.Throws<RemoteRateLimitException>(() => model.Complete(Chat()));
        Assert.Equal(TimeSpan.FromSeconds(120), error.RetryAfter);
        Assert.Single(_server.Generations);
    }

    [Fact]
    public void Keeps_the_text_received_before_a_stream_is_cut()
    {
        _server.Pieces = ["The ", "answer ", "is ", "forty"];
        _server.Respond = (context, body) => FakeOpenAiServer.StreamAsync(context, body, _server.Pieces, "stop", cutAfter: 2);
        using var model = Connect();
        var streamed = new List<string>();

        var error = Assert.Throws<RemoteStreamInterruptedException>(() => model.Complete(Chat(), onText: streamed.Add));
        Assert.Equal("The answer ", error.PartialText);
        Assert.Equal(["The ", "answer "], streamed);
    }

    [Fact]
    public void Streams_a_raw_prompt_as_it_arrives_not_when_the_answer_ends()
    {
        // The server sends the rest only after the client has shown the first piece: a client that buffers the whole
        // response (the SDK's default for a pipeline message) never shows it, and the server gives up after 20 s.
        using var firstShown = new SemaphoreSlim(0);
        var sentAfterFirstShown = false;
        _server.Respond = async (context, _) =>
        {
            context.Response.ContentType = "text/event-stream";
            context.Response.SendChunked = true;
            var output = context.Response.OutputStream;
            await FakeOpenAiServer.WriteEventAsync(output, FakeOpenAiServer.Chunk(chat: false, "first ", null));
            sentAfterFirstShown = await firstShown.WaitAsync(TimeSpan.FromSeconds(20));
            await FakeOpenAiServer.WriteEventAsync(output, FakeOpenAiServer.Chunk(chat: false, "second", "stop"));
            await output.WriteAsync(System.Text.Encoding.UTF8.GetBytes("data: [DONE]\n\n"));
            context.Response.Close();
        };
        using var model = Connect(o => o with { Timeout = TimeSpan.FromSeconds(60) });

        var result = model.Complete(new CompletionRequest { Prompt = "Once", MaxTokens = 4, Temperature = 0 }, onText: _ => firstShown.Release());
        Assert.True(sentAfterFirstShown);
        Assert.Equal("first second", result.Text);
    }

    [Fact]
    public void Treats_a_stream_that_closes_without_a_finish_as_interrupted()
    {
        _server.Respond = async (context, _) =>
        {
            context.Response.ContentType = "text/event-stream";
            await FakeOpenAiServer.WriteEventAsync(context.Response.OutputStream, FakeOpenAiServer.Chunk(chat: true, "partial", null));
            context.Response.Close();
        };
        using var model = Connect();

        var error = Assert.Throws<RemoteStreamInterruptedException>(() => model.Complete(Chat()));
        Assert.Equal("partial", error.PartialText);
    }

    [Fact]
    public void Times_out_a_server_that_does_not_answer()
    {
        _server.Respond = async (context, _) => await Task.Delay(TimeSpan.FromSeconds(20));
        using var model = Connect(o => o with { Timeout = TimeSpan.FromSeconds(1), MaxRetries = 0 });

        Assert.Throws<RemoteTimeoutException>(() => model.Complete(Chat()));
    }

    [Fact]
    public void Ends_a_cancelled_stream_with_Cancelled_and_the_text_so_far()
    {
        using var release = new SemaphoreSlim(0);
        _server.Respond = async (context, _) =>
        {
            context.Response.ContentType = "text/event-stream";
            await FakeOpenAiServer.WriteEventAsync(context.Response.OutputStream, FakeOpenAiServer.Chunk(chat: true, "first", null));
            await release.WaitAsync(TimeSpan.FromSeconds(20));
            context.Response.Abort();
        };
        using var model = Connect();
        using var cancel = new CancellationTokenSource();

        var result = model.Complete(Chat(), cancel.Token, onText: _ => cancel.Cancel());
        release.Release();
        Assert.Equal(FinishReason.Cancelled, result.FinishReason);
        Assert.Equal("first", result.Text);
    }

    [Theory]
    [InlineData("Grammar")]
    [InlineData("MinP")]
    [InlineData("TopK")]
    [InlineData("RepeatPenalty")]
    public void Refuses_parameters_the_OpenAI_API_cannot_carry_before_sending(string parameter)
    {
        using var model = Connect();
        var request = parameter switch
        {
            "Grammar" => Chat() with { Grammar = "root ::= \"x\"" },
            "MinP" => Chat() with { MinP = 0.2f },
            "TopK" => Chat() with { TopK = 5 },
            _ => Chat() with { RepeatPenalty = 1.3f },
        };

        var error = Assert.Throws<RemoteParameterNotSupportedException>(() => model.Complete(request));
        Assert.Equal(parameter, error.Parameter);
        Assert.Empty(_server.Generations);
    }

    [Fact]
    public void Takes_the_context_window_the_server_lists_unless_one_is_given()
    {
        _server.ModelContextLength = 8192;
        using var listed = Connect();
        using var given = Connect(o => o with { ContextSize = 1024 });
        _server.ModelContextLength = null;
        using var unknown = Connect();

        Assert.Equal((8192, "server"), (listed.ContextSize, listed.ContextSizeSource));
        Assert.Equal((1024, "given"), (given.ContextSize, given.ContextSizeSource));
        Assert.Equal((RemoteChatModel.FallbackContextSize, "default"), (unknown.ContextSize, unknown.ContextSizeSource));
    }

    [Fact]
    public void Counts_tokens_with_the_servers_tokenizer_when_it_has_one_else_one_per_byte()
    {
        using var estimated = Connect();
        _server.Tokenizer = true;
        using var counted = Connect();

        Assert.Equal("estimate", estimated.TokenCounting);
        Assert.Equal("naïve text".Length + 1 + RemoteChatModel.TemplateAllowance, estimated.CountTokens("naïve text"));
        Assert.Equal("server", counted.TokenCounting);
        Assert.Equal(3 + RemoteChatModel.TemplateAllowance, counted.CountTokens("three word prompt"));
    }

    [Fact]
    public void Rag_trims_passages_to_the_remote_context_as_it_does_locally()
    {
        using var model = Connect(o => o with { ContextSize = 1600 });
        var passages = Enumerable.Range(1, 6).Select(i => new RagPassage { Source = $"doc{i}.md", Text = string.Join(' ', Enumerable.Repeat($"fact{i}", 40)), Score = 1.0 / i }).ToArray();
        var request = new RagRequest { Question = "Which facts?", Generation = new CompletionRequest { MaxTokens = 64, Temperature = 0 } };

        var prompt = RagEngine.BuildPrompt(request, passages, model);

        Assert.InRange(prompt.Fitted.Passages.Count, 1, passages.Length - 1);
        Assert.True(model.CountTokens(prompt.Text) + 64 <= model.ContextSize);
    }

    [Fact]
    public void Answers_a_rag_question_through_the_remote_model()
    {
        _server.Pieces = ["Paris ", "[1]."];
        using var model = Connect(o => o with { ContextSize = 4096 });
        var retriever = new FakeRetriever(new RagPassage { Source = "france.md", Text = "Paris is the capital of France.", Score = 0.9 });

        var answer = RagEngine.Answer(new RagRequest { Question = "Capital of France?", Generation = new CompletionRequest { MaxTokens = 8, Temperature = 0 } }, retriever, model);

        Assert.Equal("Paris [1].", answer.Answer);
        Assert.Equal([1], answer.CitedNumbers);
        var messages = _server.Generations.Single().Body!["messages"]!.AsArray();
        Assert.Contains("Paris is the capital of France.", (string?)messages[^1]!["content"], StringComparison.Ordinal);
    }

    [Fact]
    public void Appends_v1_to_a_bare_server_address_and_keeps_any_other_path()
    {
        Assert.Equal("http://h:1/v1/", RemoteEndpoint.ApiBase(new Uri("http://h:1")).ToString());
        Assert.Equal("https://x.openai.azure.com/openai/v1/", RemoteEndpoint.ApiBase(new Uri("https://x.openai.azure.com/openai/v1")).ToString());
    }
}
