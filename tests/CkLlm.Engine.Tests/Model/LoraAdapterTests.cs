using CkLlm.Engine.Inference;
using CkLlm.Engine.Model;
using CkLlm.Engine.Model.Generation;
using CkLlm.Engine.Model.Gguf;

namespace CkLlm.Engine.Tests.Model;

public class LoraAdapterTests(TestModels models) : IClassFixture<TestModels>
{
    private const int Rank = 4;

    /// <summary>A LoRA adapter on every block's ffn_down: A = scale * pattern, B = scale * pattern (zero scale: no change).</summary>
    private string WriteAdapter(string name, float scale, string architecture = "llama", string type = "adapter")
    {
        var preset = ModelPreset.Tiny;
        int d = preset.EmbeddingLength, ff = preset.FeedForwardLength;
        var writer = new GgufWriter()
            .Add("general.architecture", architecture)
            .Add("general.type", type)
            .Add("adapter.type", "lora")
            .Add("adapter.lora.alpha", 0f);
        var random = new Random(5);
        for (var block = 0; block < preset.BlockCount; block++)
        {
            var a = Enumerable.Range(0, ff * Rank).Select(_ => (float)(random.NextDouble() - 0.5) * scale).ToArray();
            var b = Enumerable.Range(0, Rank * d).Select(_ => (float)(random.NextDouble() - 0.5) * scale).ToArray();
            writer.AddTensor($"blk.{block}.ffn_down.weight.lora_a", [ff, Rank], a);
            writer.AddTensor($"blk.{block}.ffn_down.weight.lora_b", [Rank, d], b);
        }
        var path = Path.Combine(models.Directory, name);
        writer.WriteTo(path);
        return path;
    }

    private static string Greedy(LoadedModel model) =>
        CompletionEngine.Complete(model, new CompletionRequest { Prompt = "Adapters change", Temperature = 0, MaxTokens = 12 }).Text;

    [Fact]
    public void AdapterIsAppliedToCompletions()
    {
        using var plain = LoadedModel.Load(models.Plain, new ModelLoadOptions { ContextSize = 256 });
        using var zero = LoadedModel.Load(models.Plain, new ModelLoadOptions { ContextSize = 256, Adapters = [WriteAdapter("zero.gguf", 0f)] });
        using var strong = LoadedModel.Load(models.Plain, new ModelLoadOptions { ContextSize = 256, Adapters = [WriteAdapter("strong.gguf", 20f)] });
        Assert.Single(strong.Adapters);
        Assert.Equal(Greedy(plain), Greedy(zero));
        Assert.NotEqual(Greedy(plain), Greedy(strong));
    }

    [Fact]
    public void ModelFileGivenAsAdapterIsRejectedBeforeLlamaCpp()
    {
        var error = Assert.Throws<GgufFormatException>(() =>
            LoadedModel.Load(models.Plain, new ModelLoadOptions { Adapters = [models.WithTemplate] }));
        Assert.Equal(models.WithTemplate, error.Path);
        Assert.Contains("not a LoRA adapter", error.Message);
    }

    [Fact]
    public void AdapterForAnotherArchitectureIsRejected()
    {
        var adapter = WriteAdapter("other-arch.gguf", 1f, architecture: "qwen2");
        var error = Assert.Throws<GgufFormatException>(() => LoadedModel.Load(models.Plain, new ModelLoadOptions { Adapters = [adapter] }));
        Assert.Contains("qwen2", error.Message);
    }

    [Fact]
    public void TruncatedAdapterIsRejected()
    {
        var adapter = WriteAdapter("truncated.gguf", 1f);
        var bytes = File.ReadAllBytes(adapter);
        File.WriteAllBytes(adapter, bytes[..(bytes.Length / 2)]);
        Assert.Throws<GgufFormatException>(() => LoadedModel.Load(models.Plain, new ModelLoadOptions { Adapters = [adapter] }));
    }
}
