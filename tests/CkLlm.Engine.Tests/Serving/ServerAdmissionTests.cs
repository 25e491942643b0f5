using System.Net;
using System.Text;
using System.Text.Json;
using CkLlm.Engine.Inference;
using CkLlm.Engine.Session;
using CkLlm.Server.Serving;

namespace CkLlm.Engine.Tests.Serving;

/// <summary>A backend whose completions wait until the test opens the gate, so a request holds its slot for exactly
/// as long as the test says.</summary>
internal sealed class GatedModel(string name) : IChatModel
{
    private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource FirstCall { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public string Name => name;
    public int ContextSize => 4096;
    public bool IsDisposed => false;
    public int CountTokens(string prompt) => prompt.Length + 1;
    public FormattedPrompt Format(CompletionRequest request) => new(string.Join("\n", request.Messages?.Select(m => m.Content) ?? [request.Prompt ?? ""]), "none", []);
    public void Open() => _gate.TrySetResult();
    public void Dispose() { }

    public async IAsyncEnumerable<CompletionChunk> StreamAsync(CompletionRequest request,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        FirstCall.TrySetResult();
        await _gate.Task.WaitAsync(cancellationToken);
        yield return new CompletionChunk("ok", 1);
        yield return new CompletionChunk("", 1, new CompletionResult
        {
            Model = name, Prompt = Format(request).Text, Text = "ok", PromptTokens = 1, CompletionTokens = 1, TokensPerSecond = 1,
            PromptTokensPerSecond = 1, FinishReason = FinishReason.Stop, ChatFormat = "none", Duration = TimeSpan.FromMilliseconds(1),
        });
    }
}

public class ServerAdmissionTests
{
    private static StringContent Chat(string model) =>
        new($$"""{"model":"{{model}}","messages":[{"role":"user","content":"hello"}]}""", Encoding.UTF8, "application/json");

    [Fact]
    public async Task Answers_503_beyond_the_running_and_queued_requests_and_serves_again_once_they_end()
    {
        using var session = new CkSession();
        var gated = new GatedModel("gated");
        session.AddModel(gated);
        var server = await CkServer.StartAsync(session, new CkServerOptions { Port = 0, MaxConcurrentRequests = 1, MaxQueuedRequests = 1 });
        try
        {
            using var http = new HttpClient { BaseAddress = server.Url, Timeout = TimeSpan.FromMinutes(2) };
            var running = http.PostAsync("v1/chat/completions", Chat("gated"));
            await gated.FirstCall.Task.WaitAsync(TimeSpan.FromMinutes(1));
            var queued = http.PostAsync("v1/chat/completions", Chat("gated"));
            var deadline = DateTime.UtcNow.AddMinutes(1);
            while (server.ActiveRequests < 2 && DateTime.UtcNow < deadline) await Task.Delay(20);
            Assert.Equal(2, server.ActiveRequests);

            using var refused = await http.PostAsync("v1/chat/completions", Chat("gated"));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            using (var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()))
                Assert.Equal("server_overloaded", error.RootElement.GetProperty("error").GetProperty("code").GetString());

            gated.Open();
            using var first = await running;
            using var second = await queued;
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            Assert.Equal(HttpStatusCode.OK, second.StatusCode);
            using var again = await http.PostAsync("v1/chat/completions", Chat("gated"));
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
            Assert.Equal(0, server.FailedRequests);
        }
        finally
        {
            gated.Open();
            await server.StopAsync();
        }
    }
}
