using System.Text.Json;
using CkLlm.Server.Serving;

namespace CkLlm.Engine.Tests.Serving;

/// <summary>How a /v1/completions body with several prompts and n becomes the engine's requests, one per choice.</summary>
public class ServerCompletionChoicesTests
{
    private static TextCompletionChoices Read(string json, int maxChoices = 8) =>
        RequestReader.ToCompletionRequests(JsonSerializer.Deserialize(json, ServerJson.Default.TextCompletionRequestDto)!, maxChoices);

    [Fact]
    public void Orders_the_choices_prompt_by_prompt_and_gives_each_of_n_its_own_seed()
    {
        var read = Read("""{"model":"m","prompt":["first","second"],"n":3,"seed":11,"max_tokens":5,"temperature":0.5}""");
        Assert.Equal(3, read.PerPrompt);
        Assert.Equal(["first", "first", "first", "second", "second", "second"], read.Choices.Select(c => c.Prompt));
        Assert.Equal([11u, 12u, 13u, 11u, 12u, 13u], read.Choices.Select(c => c.Seed!.Value));
        Assert.All(read.Choices, c => { Assert.Equal(5, c.MaxTokens); Assert.Equal(0.5f, c.Temperature); });
    }

    [Fact]
    public void A_single_prompt_without_n_or_seed_is_one_unseeded_choice()
    {
        var read = Read("""{"model":"m","prompt":"only"}""");
        Assert.Equal(1, read.PerPrompt);
        var choice = Assert.Single(read.Choices);
        Assert.Equal("only", choice.Prompt);
        Assert.Null(choice.Seed);
    }

    [Theory]
    [InlineData("""{"model":"m","prompt":"x","n":9}""", "n")]
    [InlineData("""{"model":"m","prompt":["a","b","c"],"n":3}""", "n")]
    [InlineData("""{"model":"m","prompt":["a","b","c","d","e","f","g","h","i"]}""", "prompt")]
    [InlineData("""{"model":"m","prompt":"x","n":0}""", "n")]
    [InlineData("""{"model":"m","prompt":[]}""", "prompt")]
    [InlineData("""{"model":"m","prompt":["a",5]}""", "prompt")]
    [InlineData("""{"model":"m","prompt":[[1,2]]}""", "prompt")]
    public void Refuses_what_the_server_cannot_generate_with_400_naming_the_parameter(string json, string param)
    {
        var error = Assert.Throws<ApiError>(() => Read(json));
        Assert.Equal(400, error.Status);
        Assert.Equal(param, error.Param);
    }

    [Fact]
    public void Chat_still_takes_one_choice()
    {
        var dto = JsonSerializer.Deserialize("""{"model":"m","messages":[{"role":"user","content":"hi"}],"n":2}""", ServerJson.Default.ChatCompletionRequestDto)!;
        var error = Assert.Throws<ApiError>(() => RequestReader.ToCompletionRequest(dto));
        Assert.Equal("n", error.Param);
    }
}
