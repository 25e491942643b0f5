using System.Text.Json;
using CkLlm.Engine.Model.Generation;
using CkLlm.Engine.Training;

namespace CkLlm.Engine.Tests.Training;

/// <summary>Generated models shared by the training tests (written once per test run).</summary>
public sealed class TrainingFixture : IDisposable
{
    /// <summary>The invented document, its key facts and held-out paraphrases: tests/data/invented-facts.json, the one
    /// list the Pester helpers and the fine-tuning bench read too.</summary>
    private static readonly InventedFacts Document = InventedFacts.Load();

    /// <summary>The training text: every sentence of the document, joined by spaces.</summary>
    public static string Facts => Document.Text;

    /// <summary>Each sentence of <see cref="Facts"/> with the fact a model that learned it must reproduce.</summary>
    public static IReadOnlyList<KeyFact> KeyFacts => Document.KeyFacts;

    /// <summary>The same facts in other words: never trained on, so its perplexity shows what generalised.</summary>
    public static string Paraphrases => Document.Paraphrases;

    public string Directory { get; } = Path.Combine(Path.GetTempPath(), $"ckllm-training-{Guid.NewGuid():N}");
    public string TinyModel { get; }
    public string GqaModel { get; }

    /// <summary>Grouped-query attention with 3 query heads per KV head, 3 blocks, odd sizes.</summary>
    public static ModelPreset Gqa { get; } = new("Gqa", 96, 3, 6, 2, 160, 256, 700);

    private readonly Lazy<PretrainedModel> _pretrained = new(() => PretrainedModel.GetOrTrain(InventedFacts.RepositoryRoot()));

    /// <summary>A Small model pretrained from scratch on a local corpus, cached in .build/ (trained on first use).</summary>
    public PretrainedModel Pretrained => _pretrained.Value;

    public TrainingFixture()
    {
        System.IO.Directory.CreateDirectory(Directory);
        TinyModel = Path.Combine(Directory, "tiny.gguf");
        ModelGenerator.Generate(TinyModel, new ModelGenerationOptions { Preset = ModelPreset.Tiny, Seed = 1, Corpus = Facts });
        GqaModel = Path.Combine(Directory, "gqa.gguf");
        ModelGenerator.Generate(GqaModel, new ModelGenerationOptions { Preset = Gqa, Seed = 2, Corpus = Facts });
    }

    public string NewPath(string name) => Path.Combine(Directory, $"{Guid.NewGuid():N}-{name}");

    public void Dispose()
    {
        try { System.IO.Directory.Delete(Directory, true); } catch (IOException) { }
    }
}

[CollectionDefinition("Training")]
public sealed class TrainingCollection : ICollectionFixture<TrainingFixture>;

/// <summary>Reads tests/data/invented-facts.json, found by walking up from the test assembly to the repository.</summary>
internal sealed record InventedFacts(string Text, IReadOnlyList<KeyFact> KeyFacts, string Paraphrases)
{
    private const string RelativePath = "tests/data/invented-facts.json";
    private static readonly JsonSerializerOptions Json = new() { PropertyNameCaseInsensitive = true };

    private sealed record Sentence(string Text, string Fact);
    private sealed record FileShape(List<Sentence> Sentences, List<string> Paraphrases);

    public static InventedFacts Load()
    {
        var file = Find();
        var shape = JsonSerializer.Deserialize<FileShape>(File.ReadAllText(file), Json)
            ?? throw new InvalidDataException($"'{file}' is empty.");
        // The trailing space keeps the text byte-identical to what the training tests were tuned on.
        return new InventedFacts(
            string.Join(" ", shape.Sentences.Select(s => s.Text)) + " ",
            shape.Sentences.Select(s => new KeyFact(s.Text, s.Fact)).ToList(),
            string.Join(" ", shape.Paraphrases) + " ");
    }

    /// <summary>The repository this test assembly was built from (its .build/ holds cached fixtures).</summary>
    public static string RepositoryRoot() => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(Find())!, "..", ".."));

    private static string Find() => FindUpwards(AppContext.BaseDirectory)
        ?? throw new FileNotFoundException($"'{RelativePath}' was not found above '{AppContext.BaseDirectory}'.");

    private static string? FindUpwards(string start)
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, RelativePath);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }
}
