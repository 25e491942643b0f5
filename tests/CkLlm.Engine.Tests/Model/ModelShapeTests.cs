using CkLlm.Engine.Inference;
using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Model;
using CkLlm.Engine.Model.Generation;
using CkLlm.Engine.Model.Gguf;
using CkLlm.Engine.Rag;
using CkLlm.Engine.Training;
using Microsoft.ML.Tokenizers;

namespace CkLlm.Engine.Tests.Model;

/// <summary>One Tiny model of every architecture, written once per test run.</summary>
public sealed class ShapeModels : IDisposable
{
    private readonly Dictionary<ModelArchitecture, string> _paths = new();
    private readonly Dictionary<ModelArchitecture, LoadedModel> _loaded = new();

    public ShapeModels()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("ckllm-shapes-").FullName;
        foreach (var shape in ModelShape.All)
        {
            var path = System.IO.Path.Combine(Directory, $"{shape.Architecture}.gguf");
            ModelGenerator.Generate(path, new ModelGenerationOptions { Architecture = shape.Architecture, Seed = 5 });
            _paths[shape.Architecture] = path;
            _loaded[shape.Architecture] = LoadedModel.Load(path, new ModelLoadOptions { ContextSize = 1024, Threads = 2 });
        }
    }

    public LoadedModel Loaded(ModelArchitecture architecture) => _loaded[architecture];

    /// <summary>Token ids of <paramref name="text"/> with control-token markup parsed (as chat prompts are tokenized).</summary>
    public int[] TokenizeSpecial(ModelArchitecture architecture, string text) =>
        _loaded[architecture].Weights.NativeHandle.Tokenize(text, false, true, System.Text.Encoding.UTF8).Select(t => (int)t).ToArray();

    public string Directory { get; }

    public string this[ModelArchitecture architecture] => _paths[architecture];

    public void Dispose()
    {
        foreach (var model in _loaded.Values) model.Dispose();
        try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { }
    }
}

public class ModelShapeTests(ShapeModels models) : IClassFixture<ShapeModels>
{
    public static TheoryData<ModelArchitecture> Architectures => new(ModelShape.All.Select(s => s.Architecture));

    [Theory]
    [MemberData(nameof(Architectures))]
    public void EveryShapeValidatesLoadsAndCompletesInLlamaCpp(ModelArchitecture architecture)
    {
        var shape = ModelShape.For(architecture);
        var summary = GgufValidator.Validate(models[architecture]);
        Assert.Equal(shape.GgufArchitecture, summary.Architecture);

        var result = CompletionEngine.Complete(models.Loaded(architecture), new CompletionRequest { Prompt = "The lighthouse keeper", MaxTokens = 6, Temperature = 0 });
        Assert.True(result.CompletionTokens > 0, $"{architecture} generated nothing");
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void EveryShapeChatsWithItsOwnTemplate(ModelArchitecture architecture)
    {
        var shape = ModelShape.For(architecture);
        var result = CompletionEngine.Complete(models.Loaded(architecture), new CompletionRequest
        {
            System = "Be brief.", Messages = [new ChatMessage("user", "Hello there")], Temperature = 0, MaxTokens = 4,
        });
        if (shape.ChatTemplate is null)
        {
            Assert.Equal("fallback", result.ChatFormat);
            return;
        }
        Assert.Equal("template", result.ChatFormat);
        Assert.Contains("Hello there", result.Prompt);
        var (turnStart, assistantCue) = architecture switch
        {
            ModelArchitecture.Llama3 => ("<|start_header_id|>user<|end_header_id|>", "<|start_header_id|>assistant<|end_header_id|>\n\n"),
            ModelArchitecture.Phi3 => ("<|user|>", "<|assistant|>\n"),
            ModelArchitecture.Gemma2 => ("<start_of_turn>user", "<start_of_turn>model\n"),
            _ => ("<|im_start|>user", "<|im_start|>assistant\n"),
        };
        Assert.Contains(turnStart, result.Prompt);
        Assert.EndsWith(assistantCue, result.Prompt);
        // The template's markers are single control tokens of the model's own vocabulary, not spelled-out text.
        var markers = models.TokenizeSpecial(architecture, assistantCue.TrimEnd('\n'));
        Assert.Contains(markers, id => ModelShapeFacts.ControlIds(models[architecture]).Contains(id));
    }

    [Fact]
    public void Llama3ShapeHasTheRealLayout()
    {
        var file = GgufReader.Read(models[ModelArchitecture.Llama3]);
        var tokens = file.GetArray<string>("tokenizer.ggml.tokens");
        Assert.True(tokens.Length > 100_000, $"{tokens.Length} tokens");
        Assert.Equal("gpt2", file.GetStringOrNull("tokenizer.ggml.model"));
        Assert.Equal("llama-bpe", file.GetStringOrNull("tokenizer.ggml.pre"));
        Assert.Null(file.FindTensor("output.weight"));
        Assert.True(file.GetUInt32("llama.attention.head_count_kv") < file.GetUInt32("llama.attention.head_count"));
        var factors = file.FindTensor("rope_freqs.weight");
        Assert.NotNull(factors);
        Assert.Equal([ModelPreset.Tiny.HeadDimension / 2L], factors.Shape);
    }

    [Fact]
    public void Llama3FrequencyFactorsSpanTheThreeLlama3Bands()
    {
        var factors = Llama3RopeScaling.Llama32.FrequencyFactors(16, 500000f);
        Assert.Equal(1f, factors[0]);
        Assert.Equal(32f, factors[^1]);
        Assert.Contains(factors, f => f is > 1f and < 32f);
        Assert.Equal(factors.OrderBy(f => f), factors); // longer wavelengths are never scaled less
    }

    [Fact]
    public void Llama3VocabularyTokenizesLikeTiktokenCl100k()
    {
        const string text = "Hello world! The lighthouse of Varnholm was built in 1743, naïve café    spaces\n\ttabs and emoji 🚀 done.";
        var expected = TiktokenTokenizer.CreateForEncoding("cl100k_base").EncodeToIds(text).ToArray();
        var actual = LlamaCppEvaluator.Tokenize(models[ModelArchitecture.Llama3], text, addBos: false);
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void Qwen2VocabularyRoundTripsTextThroughItsOwnPreTokenizer()
    {
        // qwen2 splits digits one by one (cl100k groups up to three), so only the round trip is compared.
        const string text = "Price: 1743 coins, naïve café 🚀 and\ttabs.";
        var model = models.Loaded(ModelArchitecture.Qwen2);
        var ids = models.TokenizeSpecial(ModelArchitecture.Qwen2, text);
        Assert.Equal(4, ids.Count(id => id is >= 15 and <= 24)); // the byte tokens of "0".."9": one per digit
        var decoder = new LLama.StreamingTokenDecoder(System.Text.Encoding.UTF8, model.Weights);
        foreach (var id in ids) decoder.Add((LLama.Native.LLamaToken)id);
        Assert.Equal(text, decoder.Read());
    }

    [Fact]
    public void RagAnswersThroughEveryShape()
    {
        var kbDir = Path.Combine(models.Directory, "kb");
        var docs = Path.Combine(models.Directory, "docs");
        System.IO.Directory.CreateDirectory(docs);
        File.WriteAllText(Path.Combine(docs, "bread.md"), "# Baking\n\nThe storm loaf contains caraway, smoked salt and lighthouse honey.\n");
        using var kb = KnowledgeBase.Open(kbDir);
        kb.AddFile(Path.Combine(docs, "bread.md"));
        foreach (var shape in ModelShape.All)
        {
            var model = models.Loaded(shape.Architecture);
            var answer = RagEngine.Answer(new RagRequest
            {
                Question = "What does the storm loaf contain?", Top = 2, Mode = "Keyword",
                Generation = new CompletionRequest { MaxTokens = 4, Temperature = 0 },
            }, new KnowledgeRagRetriever(kb), model);
            Assert.False(answer.NoKnowledge, shape.Architecture.ToString());
            Assert.Contains(answer.Citations, c => c.Source.EndsWith("bread.md", StringComparison.Ordinal));
            Assert.Contains("storm loaf contains caraway", answer.Prompt);
            Assert.Equal(shape.ChatTemplate is null ? "fallback" : "template", answer.ChatFormat);
            Assert.True(answer.CompletionTokens > 0, $"{shape.Architecture} generated no answer");
        }
    }
}

internal static class ModelShapeFacts
{
    public static HashSet<int> ControlIds(string path)
    {
        var types = GgufReader.Read(path).GetArray<int>("tokenizer.ggml.token_type");
        return Enumerable.Range(0, types.Length).Where(i => types[i] == SentencePieceVocabulary.TypeControl).ToHashSet();
    }
}
