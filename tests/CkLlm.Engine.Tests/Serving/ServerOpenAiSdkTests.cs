using System.ClientModel;
using System.Text.Json;
using CkLlm.Engine.Model;
using CkLlm.Engine.Model.Generation;
using CkLlm.Engine.Session;
using CkLlm.Server.Serving;
using OpenAI;
using OpenAI.Chat;

namespace CkLlm.Engine.Tests.Serving;

/// <summary>A running server with a generated chat model and a one-document knowledge base, on its own session.</summary>
public sealed class ServedSessionFixture : IAsyncLifetime, IDisposable
{
    public const string ApiKey = "sdk-test-key";
    public const string ChatModel = "chat";

    private readonly string _directory = Directory.CreateTempSubdirectory("ckllm-server-tests-").FullName;
    private readonly CkSession _session = new();

    public CkServer Server { get; private set; } = null!;
    public CkSession Session => _session;
    public string KnowledgeBase => Path.Combine(_directory, "kb");
    public string RagModel => "rag/kb";
    public Uri Endpoint => new(Server.Url, "v1");

    public OpenAIClient Client(string key = ApiKey) =>
        new(new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = Endpoint, NetworkTimeout = TimeSpan.FromMinutes(2), RetryPolicy = new System.ClientModel.Primitives.ClientRetryPolicy(0) });

    public async Task InitializeAsync()
    {
        var model = Path.Combine(_directory, "tiny-chat.gguf");
        ModelGenerator.Generate(model, new ModelGenerationOptions { Preset = ModelPreset.Tiny, Seed = 1 }.WithChatML());
        _session.ImportModel(model, new ModelLoadOptions { Name = ChatModel, ContextSize = 1024 });
        _session.OpenKnowledgeBase(KnowledgeBase).AddText("Kilauea is a shield volcano on the island of Hawaii.\nIt erupted almost continuously from 1983 to 2018.", "volcano.md");
        Server = await CkServer.StartAsync(_session, new CkServerOptions { Port = 0, ApiKey = ApiKey, KnowledgeBases = [KnowledgeBase], MaxConcurrentRequests = 4 });
    }

    public async Task DisposeAsync()
    {
        await Server.StopAsync();
        Dispose();
    }

    public void Dispose()
    {
        _session.Dispose();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}

/// <summary>The official OpenAI .NET SDK (NuGet OpenAI) against Start-CkServer's engine: models, chat (plain,
/// streamed, JSON schema), embeddings, rag/ with citations, and a wrong key.</summary>
public class ServerOpenAiSdkTests(ServedSessionFixture served) : IClassFixture<ServedSessionFixture>
{
    private static readonly ChatMessage[] Hello = [new UserChatMessage("Hello there")];

    [Fact]
    public void Lists_the_loaded_model_and_the_served_knowledge_base()
    {
        var models = served.Client().GetOpenAIModelClient().GetModels().Value;
        Assert.Equal([ServedSessionFixture.ChatModel, served.RagModel], models.Select(m => m.Id));
    }

    [Fact]
    public void Completes_a_chat_and_streams_the_same_text_under_greedy_sampling()
    {
        var chat = served.Client().GetChatClient(ServedSessionFixture.ChatModel);
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 8, Temperature = 0 };
        ChatCompletion completion = chat.CompleteChat(Hello, options);
        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
        Assert.Equal(8, completion.Usage.OutputTokenCount);
        Assert.True(completion.Usage.InputTokenCount > 0);

        var streamed = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        var updates = 0;
        foreach (var update in chat.CompleteChatStreaming(Hello, options))
        {
            updates++;
            foreach (var part in update.ContentUpdate) streamed.Append(part.Text);
            finish ??= update.FinishReason;
        }
        Assert.Equal(completion.Content[0].Text, streamed.ToString());
        Assert.Equal(ChatFinishReason.Length, finish);
        Assert.True(updates > 2);
    }

    [Fact]
    public void Answers_a_json_schema_response_format_with_json_that_follows_it()
    {
        var chat = served.Client().GetChatClient(ServedSessionFixture.ChatModel);
        var schema = BinaryData.FromString("""{"type":"object","properties":{"color":{"enum":["red","green"]},"ok":{"type":"boolean"}},"required":["color","ok"],"additionalProperties":false}""");
        ChatCompletion completion = chat.CompleteChat([new UserChatMessage("JSON please")], new ChatCompletionOptions
        {
            MaxOutputTokenCount = 100, Temperature = 0.7f,
            ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("answer", schema, jsonSchemaIsStrict: true),
        });
        using var json = JsonDocument.Parse(completion.Content[0].Text);
        Assert.Contains(json.RootElement.GetProperty("color").GetString(), new[] { "red", "green" });
        Assert.True(json.RootElement.GetProperty("ok").ValueKind is JsonValueKind.True or JsonValueKind.False);
    }

    [Fact]
    public void Embeds_with_the_knowledge_base_embedder()
    {
        var embeddings = served.Client().GetEmbeddingClient(served.RagModel).GenerateEmbeddings(["volcanoes erupt", "bread rises"]).Value;
        Assert.Equal(2, embeddings.Count);
        foreach (var embedding in embeddings)
        {
            var vector = embedding.ToFloats().ToArray();
            Assert.Equal(384, vector.Length);
            Assert.Equal(1.0, Math.Sqrt(vector.Sum(x => (double)x * x)), 3);
        }
        Assert.NotEqual(embeddings[0].ToFloats().ToArray(), embeddings[1].ToFloats().ToArray());
    }

    [Fact]
    public void Answers_a_rag_model_with_the_citations_of_its_passages()
    {
        var result = served.Client().GetChatClient(served.RagModel).CompleteChat(
            [new UserChatMessage("Which volcano erupted from 1983 to 2018?")], new ChatCompletionOptions { MaxOutputTokenCount = 8, Temperature = 0 });
        using var raw = JsonDocument.Parse(result.GetRawResponse().Content.ToString());
        var citations = raw.RootElement.GetProperty("citations");
        Assert.Equal(1, citations[0].GetProperty("number").GetInt32());
        Assert.Equal("volcano.md", citations[0].GetProperty("source").GetString());
        Assert.Equal(8, result.Value.Usage.OutputTokenCount);
    }

    [Fact]
    public void Refuses_a_wrong_key_with_401()
    {
        var error = Assert.Throws<ClientResultException>(() => served.Client("wrong").GetChatClient(ServedSessionFixture.ChatModel).CompleteChat(Hello));
        Assert.Equal(401, error.Status);
    }

    [Fact]
    public void Refuses_an_unknown_model_with_404()
    {
        var error = Assert.Throws<ClientResultException>(() => served.Client().GetChatClient("no-such-model").CompleteChat(Hello));
        Assert.Equal(404, error.Status);
    }

    [Fact]
    public async Task Decodes_concurrent_requests_together_and_each_gets_its_own_answer()
    {
        // Greedy answers of four different prompts, one at a time, then all four at once: continuous batching must give
        // every request exactly the text it gets alone.
        var chat = served.Client().GetChatClient(ServedSessionFixture.ChatModel);
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 12, Temperature = 0 };
        string[] prompts = ["Tell me about volcanoes", "What is bread?", "Hello", "Count to three"];
        var alone = prompts.Select(p => chat.CompleteChat([new UserChatMessage(p)], options).Value.Content[0].Text).ToArray();
        var together = await Task.WhenAll(prompts.Select(async p => (await chat.CompleteChatAsync([new UserChatMessage(p)], options)).Value.Content[0].Text));
        Assert.Equal(alone, together);
    }
}
