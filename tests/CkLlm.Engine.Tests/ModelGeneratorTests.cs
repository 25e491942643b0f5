using CkLlm.Engine.Model.Generation;
using LLama;
using LLama.Common;

namespace CkLlm.Engine.Tests;

public class ModelGeneratorTests
{
    [Fact]
    public void GeneratedTinyModelLoadsInLlamaCppAndTokenizes()
    {
        var path = Path.Combine(Path.GetTempPath(), $"ckllm-test-{Guid.NewGuid():N}.gguf");
        try
        {
            ModelGenerator.Generate(path, new ModelGenerationOptions());
            using var weights = LLamaWeights.LoadFromFile(new ModelParams(path) { ContextSize = 256 });
            Assert.Equal(ModelPreset.Tiny.VocabularySize, weights.Vocab.Count);
            using var context = weights.CreateContext(new ModelParams(path) { ContextSize = 256 });
            var tokens = context.Tokenize("The quick brown fox", addBos: true);
            Assert.True(tokens.Length is > 1 and < 12, $"{tokens.Length} tokens");
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void SameSeedGivesSameBytes()
    {
        var a = Path.GetTempFileName(); var b = Path.GetTempFileName(); var c = Path.GetTempFileName();
        try
        {
            ModelGenerator.Generate(a, new ModelGenerationOptions { Seed = 7 });
            ModelGenerator.Generate(b, new ModelGenerationOptions { Seed = 7 });
            ModelGenerator.Generate(c, new ModelGenerationOptions { Seed = 8 });
            Assert.Equal(File.ReadAllBytes(a), File.ReadAllBytes(b));
            Assert.NotEqual(File.ReadAllBytes(a), File.ReadAllBytes(c));
        }
        finally { File.Delete(a); File.Delete(b); File.Delete(c); }
    }
}
