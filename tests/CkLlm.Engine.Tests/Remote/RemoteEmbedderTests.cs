using System.Numerics.Tensors;
using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Knowledge.Embedding;
using CkLlm.Engine.Knowledge.Search;
using CkLlm.Engine.Knowledge.Storage;
using CkLlm.Engine.Remote;
using CkLlm.Engine.Tests.Knowledge;

namespace CkLlm.Engine.Tests.Remote;

/// <summary>Remote embeddings through the registry and the knowledge base, against the scripted server.</summary>
[Collection(RemoteEmbedderCollection.Name)] // the key lookup reads a process-wide environment variable
public sealed class RemoteEmbedderTests : IDisposable
{
    private const string Key = "sk-embed-51c0e8d2-secret";
    private readonly FakeOpenAiServer _server = new();

    public RemoteEmbedderTests() => RemoteEmbedder.RememberKey(_server.Endpoint, Key);

    public void Dispose()
    {
        RemoteEmbedder.RememberKey(_server.Endpoint, null);
        _server.Dispose();
    }

    private string Locator(string model = "embed-model") => RemoteEmbedder.LocatorFor(_server.Endpoint, model);

    [Fact]
    public void Learns_the_dimensions_once_and_records_endpoint_model_and_dimensions_but_never_the_key()
    {
        _server.EmbeddingDimensions = 48;
        var embedder = EmbedderRegistry.Resolve(Locator("team/embed-v2"));

        Assert.Equal(48, embedder.Dimensions);
        Assert.Equal($"remote:http://127.0.0.1:{_server.Port}/v1?model=team%2Fembed-v2&dimensions=48", embedder.Id);
        Assert.Equal(embedder.Id, embedder.Locator);
        Assert.DoesNotContain(Key, embedder.Id, StringComparison.Ordinal);
        var probe = Assert.Single(_server.EmbeddingRequests);
        Assert.Equal($"Bearer {Key}", probe.Authorization);
        Assert.Equal("team/embed-v2", (string?)probe.Body!["model"]);
        Assert.Equal("float", (string?)probe.Body["encoding_format"]);

        // The recorded locator makes the same embedder without asking the server again.
        var again = EmbedderRegistry.Resolve(embedder.Locator);
        Assert.Equal(embedder.Id, again.Id);
        Assert.Single(_server.EmbeddingRequests);
    }

    [Fact]
    public void Batches_inputs_per_request_and_returns_normalised_vectors_in_input_order()
    {
        var embedder = EmbedderRegistry.Resolve(Locator());
        var texts = Enumerable.Range(0, RemoteEmbedder.MaxInputsPerRequest * 2 + 5).Select(i => $"passage number {i} about topic {i % 7}").ToArray();

        var vectors = embedder.Embed(texts);

        var batches = _server.EmbeddingRequests.Skip(1).Select(r => r.Body!["input"]!.AsArray().Count).ToArray();
        Assert.Equal([RemoteEmbedder.MaxInputsPerRequest, RemoteEmbedder.MaxInputsPerRequest, 5], batches);
        for (var i = 0; i < texts.Length; i++)
        {
            var expected = FakeOpenAiServer.Vector(texts[i], embedder.Dimensions);
            TensorPrimitives.Divide(expected, TensorPrimitives.Norm(expected), expected);
            Assert.Equal(1f, TensorPrimitives.Norm(vectors[i]), 4);
            Assert.Equal(1f, TensorPrimitives.CosineSimilarity(expected, vectors[i]), 4);
        }
    }

    [Fact]
    public void A_knowledge_base_searches_with_its_recorded_remote_embedder_and_refuses_another()
    {
        using var dir = new KnowledgeTestDirectory();
        var options = () => new KnowledgeBaseOptions { VectorIndexFactory = InMemoryVectorIndex.Create };
        string recorded;
        using (var kb = KnowledgeBase.Open(dir.Kb, new KnowledgeBaseOptions { Embedder = Locator(), VectorIndexFactory = InMemoryVectorIndex.Create }))
        {
            kb.AddText("Kilauea is a shield volcano whose lava erupted for decades.", "volcano");
            kb.AddText("Sourdough bread rises with wild yeast and flour.", "bread");
            recorded = kb.Embedder;
        }
        var before = _server.EmbeddingRequests.Count();

        // Reopened with nothing named: the recorded endpoint and model, and the query goes to the server.
        using (var kb = KnowledgeBase.Open(dir.Kb, options()))
        {
            Assert.Equal(recorded, kb.Embedder);
            Assert.Equal("volcano", kb.Search("volcano lava", new SearchOptions { Mode = SearchMode.Vector })[0].Source);
        }
        Assert.Equal("volcano lava", (string?)_server.EmbeddingRequests.Skip(before).Single().Body!["input"]![0]);

        var otherModel = Assert.Throws<EmbedderMismatchException>(() => KnowledgeBase.Open(dir.Kb, new KnowledgeBaseOptions { Embedder = Locator("other-model") }));
        Assert.Contains(recorded, otherModel.Message, StringComparison.Ordinal);
        using var elsewhere = new FakeOpenAiServer();
        var otherEndpoint = Assert.Throws<EmbedderMismatchException>(() =>
            KnowledgeBase.Open(dir.Kb, new KnowledgeBaseOptions { Embedder = RemoteEmbedder.LocatorFor(elsewhere.Endpoint, "embed-model") }));
        Assert.Contains($":{elsewhere.Port}/v1", otherEndpoint.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Uses_a_key_given_later_and_else_the_environment_variable()
    {
        var embedder = EmbedderRegistry.Resolve(Locator());
        RemoteEmbedder.RememberKey(_server.Endpoint, null);
        var variable = Environment.GetEnvironmentVariable(RemoteEmbedder.ApiKeyVariable);
        try
        {
            Environment.SetEnvironmentVariable(RemoteEmbedder.ApiKeyVariable, "sk-from-environment");
            embedder.EmbedQuery("one");
            RemoteEmbedder.RememberKey(new Uri(_server.Endpoint, "/v1/"), "sk-given-later");
            embedder.EmbedQuery("two");
        }
        finally
        {
            Environment.SetEnvironmentVariable(RemoteEmbedder.ApiKeyVariable, variable);
        }
        Assert.Equal(["Bearer sk-from-environment", "Bearer sk-given-later"], _server.EmbeddingRequests.Skip(1).Select(r => r.Authorization));
    }

    [Fact]
    public void Reports_a_wrong_key_as_an_authentication_error_without_the_key()
    {
        _server.RespondEmbeddings = (context, _) => FakeOpenAiServer.WriteJsonAsync(context, 401, FakeOpenAiServer.Error($"Incorrect API key provided: {Key}"));

        var error = Assert.Throws<RemoteAuthenticationException>(() => EmbedderRegistry.Resolve(Locator()));
        Assert.DoesNotContain(Key, error.ToString(), StringComparison.Ordinal); // inner exceptions included
        Assert.Contains("embedding with 'embed-model'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Retries_a_rate_limited_request_as_the_chat_model_does()
    {
        var calls = 0;
        _server.RespondEmbeddings = (context, body) => Interlocked.Increment(ref calls) == 1
            ? FakeOpenAiServer.WriteJsonAsync(context, 429, FakeOpenAiServer.Error("slow down"), new Dictionary<string, string> { ["Retry-After"] = "0" })
            : _server.EmbedAsync(context, body);

        Assert.Equal(64, EmbedderRegistry.Resolve(Locator()).Dimensions);
        Assert.Equal(2, calls);
    }

    [Fact]
    public void Reports_a_server_that_is_not_running_as_a_connection_error()
    {
        var closed = new Uri($"http://127.0.0.1:{FakeOpenAiServer.FreePort()}");
        Assert.Throws<RemoteConnectionException>(() => EmbedderRegistry.Resolve(RemoteEmbedder.LocatorFor(closed, "embed-model")));
    }

    [Fact]
    public void Refuses_a_vector_of_another_length_than_the_recorded_one()
    {
        var embedder = EmbedderRegistry.Resolve(Locator());
        _server.EmbeddingDimensions = embedder.Dimensions + 1;

        var error = Assert.Throws<RemoteModelException>(() => embedder.Embed(["text"]));
        Assert.Contains($"{embedder.Dimensions + 1} dimensions", error.Message, StringComparison.Ordinal);
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RemoteEmbedderCollection
{
    public const string Name = "Remote embedder keys";
}
