using CkLlm.Engine.Model.Generation;
using CkLlm.Engine.Training;
using Xunit.Abstractions;

namespace CkLlm.Engine.Tests.Training;

/// <summary>
/// The trainable real-world shapes (Llama 3 with rope_freqs and tied embeddings, Qwen2 with q/k/v biases and NEOX
/// RoPE, SmolLM-like llama) computed by the training graph and by llama.cpp: base, with a trained adapter, merged.
/// </summary>
[Collection("Training")]
public class ShapeParityTests(TrainingFixture fixture, ITestOutputHelper output)
{
    private const string Sentence = "The storm loaf contains caraway, smoked salt and a spoon of lighthouse honey. Mira Quill keeps the slate board.";

    private static readonly Dictionary<ModelArchitecture, string> Models = new();
    private static readonly Dictionary<ModelArchitecture, (string Path, IReadOnlyList<string> Targets)> Adapters = new();
    private static readonly Lock Gate = new();

    public static TheoryData<ModelArchitecture> Trainable => new(ModelArchitecture.Llama3, ModelArchitecture.Qwen2, ModelArchitecture.SmolLM);

    /// <summary>One model per architecture for the whole run (GQA, odd sizes), generated on first use.</summary>
    private string ModelOf(ModelArchitecture architecture)
    {
        lock (Gate)
        {
            if (!Models.TryGetValue(architecture, out var path) || !File.Exists(path))
            {
                path = fixture.NewPath($"{architecture}.gguf");
                ModelGenerator.Generate(path, new ModelGenerationOptions
                {
                    Architecture = architecture, Preset = TrainingFixture.Gqa with { VocabularySize = 400 }, Seed = 11, Corpus = TrainingFixture.Facts,
                });
                Models[architecture] = path;
            }
            return path;
        }
    }

    private (string Adapter, FineTuneOptions Options) AdapterOf(ModelArchitecture architecture)
    {
        var model = ModelOf(architecture);
        var options = new FineTuneOptions
        {
            ModelPath = model,
            OutputPath = fixture.NewPath($"{architecture}-lora.gguf"),
            Texts = [TrainingFixture.Facts[..300]], // a few steps: enough to move the logits, cheap with a 100k vocabulary
            Epochs = 3,
            ContextLength = 32,
            BatchSize = 2,
            LearningRate = 1e-2f,
            MeasurePerplexity = false,
        };
        lock (Gate)
        {
            if (!Adapters.TryGetValue(architecture, out var trained) || !File.Exists(trained.Path))
            {
                var result = FineTuner.Run(options);
                Adapters[architecture] = trained = (result.AdapterPath!, result.LoraTargets);
            }
            // The trainer resolves its default targets per model (the output too when it is not tied): rebuild the same.
            return (trained.Path, options with { LoraTargets = trained.Targets });
        }
    }

    private void AssertParity(string what, float[] expected, float[] actual)
    {
        var (maxDiff, spread) = GraphParityTests.Compare(expected, actual);
        output.WriteLine($"{what}: max |diff| {maxDiff:E2}, logit spread {spread:E2}");
        Assert.True(maxDiff < 1e-4 * Math.Max(1, spread) && maxDiff < 1e-3, $"{what}: max |diff| {maxDiff:E2}, logit spread {spread:E2}");
        Assert.True(spread > 100 * maxDiff, $"{what}: logit spread {spread:E2} is not large against the tolerance ({maxDiff:E2})");
    }

    [Theory]
    [MemberData(nameof(Trainable))]
    public void BaseGraphLogitsEqualLlamaCpp(ModelArchitecture architecture)
    {
        var model = ModelOf(architecture);
        var tokens = LlamaCppEvaluator.Tokenize(model, Sentence);
        var expected = LlamaCppEvaluator.Logits(model, null, tokens);
        using var graph = new LlamaGraphModel(model);
        AssertParity($"{architecture} base", expected, graph.ComputeLogits(tokens));
    }

    [Theory]
    [MemberData(nameof(Trainable))]
    public void GraphWithTrainedAdapterEqualsLlamaCppWithTheAdapter(ModelArchitecture architecture)
    {
        var model = ModelOf(architecture);
        var (adapter, options) = AdapterOf(architecture);
        var tokens = LlamaCppEvaluator.Tokenize(model, Sentence);
        var baseLogits = LlamaCppEvaluator.Logits(model, null, tokens);
        var expected = LlamaCppEvaluator.Logits(model, adapter, tokens);
        using var graph = new LlamaGraphModel(model);
        using var lora = new LoraWeights(graph.Graph, graph.Backend, options.Rank, options.Alpha, options.LoraTargets ?? LoraTargets.Default, seed: 0);
        lora.Load(adapter);
        AssertParity($"{architecture} adapter", expected, graph.ComputeLogits(tokens, lora));
        var (effect, _) = GraphParityTests.Compare(baseLogits, expected);
        Assert.True(effect > 1e-3, $"the adapter barely changes llama.cpp's logits ({effect:E2})");
    }

    [Theory]
    [MemberData(nameof(Trainable))]
    public void MergedModelEqualsBasePlusAdapterInLlamaCpp(ModelArchitecture architecture)
    {
        var model = ModelOf(architecture);
        var (adapter, options) = AdapterOf(architecture);
        var merged = fixture.NewPath($"{architecture}-merged.gguf");
        using (var graph = new LlamaGraphModel(model))
        using (var lora = new LoraWeights(graph.Graph, graph.Backend, options.Rank, options.Alpha, options.LoraTargets ?? LoraTargets.Default, seed: 0))
        {
            lora.Load(adapter);
            ModelWriter.Write(graph, lora, merged, quantization: null);
        }
        var tokens = LlamaCppEvaluator.Tokenize(model, Sentence);
        AssertParity($"{architecture} merged", LlamaCppEvaluator.Logits(model, adapter, tokens), LlamaCppEvaluator.Logits(merged, null, tokens));
    }

    /// <summary>
    /// Random tiny weights attend almost uniformly, so the generated factors move logits less than the tolerance. Here
    /// they are made strong (every angle x64): llama.cpp's logits move far more than the tolerance, and the graph still
    /// matches, which it could not if it ignored rope_freqs.
    /// </summary>
    [Fact]
    public void GraphFollowsStrongFrequencyFactorsLikeLlamaCpp()
    {
        var model = ModelOf(ModelArchitecture.Llama3);
        var file = CkLlm.Engine.Model.Gguf.GgufReader.Read(model);
        var factors = file.FindTensor("rope_freqs.weight")!;
        var bytes = File.ReadAllBytes(model);
        var strong = new byte[factors.ByteSize];
        for (int i = 0; i < strong.Length; i += 4) BitConverter.TryWriteBytes(strong.AsSpan(i), 1f / 64);
        strong.CopyTo(bytes, (int)(file.DataOffset + factors.Offset));
        var variant = fixture.NewPath("llama3-strong-rope.gguf");
        File.WriteAllBytes(variant, bytes);

        var tokens = LlamaCppEvaluator.Tokenize(model, Sentence);
        var expected = LlamaCppEvaluator.Logits(variant, null, tokens);
        var (moved, _) = GraphParityTests.Compare(LlamaCppEvaluator.Logits(model, null, tokens), expected);
        output.WriteLine($"strong rope_freqs move llama.cpp's logits by up to {moved:E2}");
        Assert.True(moved > 1e-3, $"the factors barely matter ({moved:E2})");
        using var graph = new LlamaGraphModel(variant);
        AssertParity("llama3 strong rope_freqs", expected, graph.ComputeLogits(tokens));
    }

    [Theory]
    [InlineData(ModelArchitecture.Phi3, "fuses q/k/v")]
    [InlineData(ModelArchitecture.Gemma2, "softcapping")]
    public void InferenceOnlyArchitecturesAreRefusedBeforeAnyNativeCall(ModelArchitecture architecture, string reason)
    {
        var model = fixture.NewPath($"{architecture}.gguf");
        ModelGenerator.Generate(model, new ModelGenerationOptions { Architecture = architecture, Seed = 3, Corpus = TrainingFixture.Facts });
        var options = new FineTuneOptions { ModelPath = model, OutputPath = fixture.NewPath("never.gguf"), Texts = [TrainingFixture.Facts] };

        var e = Assert.Throws<ModelNotTrainableException>(() => FineTuner.Run(options));
        var shape = ModelShape.For(architecture);
        Assert.Equal(shape.GgufArchitecture, e.Architecture);
        Assert.Contains($"'{shape.GgufArchitecture}'", e.Message);
        Assert.Contains(reason, e.Reason);
        Assert.False(File.Exists(options.OutputPath));
        // The graph itself refuses too, so no other entry point can build a wrong graph.
        Assert.Throws<ModelNotTrainableException>(() => new LlamaGraphModel(model));
    }
}
