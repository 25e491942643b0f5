using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using CkLlm.Engine.Model;
using CkLlm.Engine.Remote;

namespace CkLlm.Engine.Tests.Serving;

/// <summary>What lets a client budget prompts for a model of this server: /v1/models' context window, llama.cpp's
/// /tokenize and /detokenize, and CkLlm's own remote client reading both; and MCP's ask_knowledge over HTTP decoding
/// in the model's batch.</summary>
public class ServerTokenizerTests(ServedSessionFixture served) : IClassFixture<ServedSessionFixture>
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromMinutes(2) };

    [Fact]
    public async Task Lists_each_model_with_the_context_window_a_request_gets()
    {
        using var models = await SendAsync(HttpMethod.Get, "v1/models", null);
        var data = models.RootElement.GetProperty("data");
        var chat = data.EnumerateArray().Single(m => m.GetProperty("id").GetString() == ServedSessionFixture.ChatModel);
        Assert.Equal(1024, chat.GetProperty("max_model_len").GetInt32());
        var meta = chat.GetProperty("meta");
        Assert.Equal(512, meta.GetProperty("n_ctx_train").GetInt32()); // the Tiny preset's trained length, not the served window
        Assert.Equal(512, meta.GetProperty("n_vocab").GetInt32());
        Assert.True(meta.GetProperty("n_params").GetInt64() > 100_000);
        var rag = data.EnumerateArray().Single(m => m.GetProperty("id").GetString() == served.RagModel);
        Assert.Equal(1024, rag.GetProperty("max_model_len").GetInt32());
    }

    [Fact]
    public async Task Tokenizes_and_detokenizes_with_the_served_models_tokenizer_as_llama_cpp_does()
    {
        var model = Assert.IsType<LoadedModel>(served.Session.GetModel(ServedSessionFixture.ChatModel));
        const string text = "Kilauea erupted <|im_end|> again";
        using var plain = await SendAsync(HttpMethod.Post, "tokenize", new { content = text });
        var tokens = plain.RootElement.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).ToArray();
        Assert.Equal(model.Tokenize(text, addBos: false, parseSpecial: true), tokens);

        using var special = await SendAsync(HttpMethod.Post, "tokenize", new { content = text, add_special = true, parse_special = false });
        var withBos = special.RootElement.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).ToArray();
        Assert.Equal(model.Tokenize(text, addBos: true, parseSpecial: false), withBos);
        Assert.NotEqual(tokens.Length, withBos.Length);

        using var back = await SendAsync(HttpMethod.Post, "detokenize", new { tokens = model.Tokenize("Kilauea erupted again") });
        Assert.Equal("Kilauea erupted again", back.RootElement.GetProperty("content").GetString()?.TrimStart());
    }

    [Fact]
    public async Task Refuses_token_ids_outside_the_vocabulary_and_unknown_models()
    {
        var bad = await Assert.ThrowsAsync<HttpRequestException>(() => SendAsync(HttpMethod.Post, "detokenize", new { tokens = new[] { 1, 512 } }));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        var unknown = await Assert.ThrowsAsync<HttpRequestException>(() => SendAsync(HttpMethod.Post, "tokenize", new { content = "x", model = "no-such-model" }));
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
    }

    [Fact]
    public async Task A_remote_model_on_this_server_learns_its_window_and_counts_with_its_tokenizer()
    {
        using var remote = await RemoteChatModel.ConnectAsync(new RemoteModelOptions
        {
            Endpoint = served.Endpoint, RemoteModel = ServedSessionFixture.ChatModel, ApiKey = ServedSessionFixture.ApiKey,
        });
        Assert.Equal(("server", 1024), (remote.ContextSizeSource, remote.ContextSize));
        Assert.Equal("server", remote.TokenCounting);
        var local = Assert.IsType<LoadedModel>(served.Session.GetModel(ServedSessionFixture.ChatModel));
        const string prompt = "Which volcano erupted from 1983 to 2018?";
        Assert.Equal(local.Tokenize(prompt, addBos: true, parseSpecial: true).Length + RemoteChatModel.TemplateAllowance, remote.CountTokens(prompt));
    }

    [Fact]
    public async Task Mcp_ask_knowledge_over_http_decodes_in_the_models_batch()
    {
        var before = served.Server.Batching.SingleOrDefault(b => b.Model == ServedSessionFixture.ChatModel)?.GeneratedTokens ?? 0;
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(served.Server.Url, "mcp"))
        {
            Content = new StringContent("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ask_knowledge","arguments":{"question":"Which volcano erupted?","maxTokens":6}}}""",
                Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ServedSessionFixture.ApiKey);
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.Accept.ParseAdd("text/event-stream");
        using var response = await Http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        var json = body.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("data:", StringComparison.Ordinal)) is { } data ? data[5..] : body;
        using var result = JsonDocument.Parse(json);
        var structured = result.RootElement.GetProperty("result").GetProperty("structuredContent");
        Assert.Equal("volcano.md", structured.GetProperty("citations")[0].GetProperty("source").GetString());
        var after = served.Server.Batching.Single(b => b.Model == ServedSessionFixture.ChatModel).GeneratedTokens;
        Assert.True(after > before, $"ask_knowledge generated outside the batch runner (generated tokens {before} -> {after}).");
    }

    private async Task<JsonDocument> SendAsync(HttpMethod method, string path, object? body)
    {
        using var request = new HttpRequestMessage(method, new Uri(served.Server.Url, path));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ServedSessionFixture.ApiKey);
        if (body is not null) request.Content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");
        using var response = await Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        if (!response.IsSuccessStatusCode) throw new HttpRequestException(text, null, response.StatusCode);
        return JsonDocument.Parse(text);
    }
}
