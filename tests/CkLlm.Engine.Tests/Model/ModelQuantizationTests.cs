using CkLlm.Engine.Model.Generation;
using CkLlm.Engine.Model.Gguf;
using LLama;
using LLama.Common;

namespace CkLlm.Engine.Tests.Model;

public class ModelQuantizationTests
{
    public static TheoryData<string> AcceptedNames() => new(ModelQuantization.Names);

    [Theory]
    [MemberData(nameof(AcceptedNames))]
    public void EveryAcceptedNameWritesAModelLlamaCppLoads(string name)
    {
        var dir = Directory.CreateTempSubdirectory("ckllm-quant-").FullName;
        try
        {
            var path = Path.Combine(dir, "tiny.gguf");
            // Lower case on purpose: names are matched without case.
            ModelGenerator.Generate(path, new ModelGenerationOptions { Seed = 1, Quantization = name.ToLowerInvariant() });

            var file = GgufReader.Read(path);
            Assert.Equal((uint)ModelQuantization.FileTypeOf(name), file.GetUInt32("general.file_type"));
            GgufValidator.Validate(file);
            using var weights = LLamaWeights.LoadFromFile(new ModelParams(path) { ContextSize = 256 });
            Assert.Equal(ModelPreset.Tiny.VocabularySize, weights.Vocab.Count);
            Assert.Equal(["tiny.gguf"], Directory.GetFiles(dir).Select(Path.GetFileName));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Theory]
    [InlineData("Q8_0", new[] { GgmlType.Q8_0 })]
    [InlineData("F16", new[] { GgmlType.F16 })]
    // llama.cpp's Q4_K_M mix: Q6_K for the output matrix and some attn_v / ffn_down, Q4_K for the rest.
    [InlineData("Q4_K_M", new[] { GgmlType.Q4_K, GgmlType.Q6_K })]
    public void SmallModelMatricesHaveTheRequestedTypes(string name, GgmlType[] matrixTypes)
    {
        var path = Path.Combine(Path.GetTempPath(), $"ckllm-quant-{Guid.NewGuid():N}.gguf");
        try
        {
            // Small: every row length divides into 256-element K-quant blocks, so llama.cpp needs no fallback type.
            ModelGenerator.Generate(path, new ModelGenerationOptions { Preset = ModelPreset.Small, Seed = 1, Quantization = name });
            var tensors = GgufReader.Read(path).Tensors;
            var matrices = tensors.Where(t => t.Shape.Count == 2).ToList();
            Assert.All(matrices, t => Assert.Contains(t.Type, matrixTypes));
            Assert.True(matrices.Count(t => t.Type == matrixTypes[0]) > matrices.Count / 2, string.Join(", ", matrices));
            Assert.Contains(matrices, t => t.Name == "output.weight");
            Assert.All(tensors.Where(t => t.Shape.Count == 1), t => Assert.Equal(GgmlType.F32, t.Type));
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void WithoutQuantizationTheBytesAreThoseOfTheF32Generator()
    {
        var a = Path.GetTempFileName(); var b = Path.GetTempFileName();
        try
        {
            ModelGenerator.Generate(a, new ModelGenerationOptions { Seed = 3 });
            ModelGenerator.Generate(b, new ModelGenerationOptions { Seed = 3, Quantization = "F32" });
            Assert.Equal(File.ReadAllBytes(a), File.ReadAllBytes(b));
            Assert.All(GgufReader.Read(a).Tensors, t => Assert.Equal(GgmlType.F32, t.Type));
        }
        finally { File.Delete(a); File.Delete(b); }
    }

    [Theory]
    [InlineData("Q4_K")]   // ambiguous in LLamaSharp's substring match (Q4_K_S, Q4_K_M)
    [InlineData("IQ2_XXS")] // llama.cpp needs an importance matrix
    [InlineData("BF16")]    // LLamaSharp 0.30 refuses it
    [InlineData("Q9_9")]
    [InlineData("")]
    public void AnUnknownNameIsRejectedBeforeAnythingIsWritten(string name)
    {
        var path = Path.Combine(Path.GetTempPath(), $"ckllm-quant-{Guid.NewGuid():N}.gguf");
        var error = Assert.Throws<ArgumentException>(() => ModelGenerator.Generate(path, new ModelGenerationOptions { Quantization = name }));
        Assert.Contains("Q4_K_M", error.Message);
        Assert.False(File.Exists(path));
        Assert.False(ModelQuantization.TryNormalize(name, out _));
    }
}
