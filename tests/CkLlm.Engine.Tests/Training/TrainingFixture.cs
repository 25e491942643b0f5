using CkLlm.Engine.Model.Generation;

namespace CkLlm.Engine.Tests.Training;

/// <summary>Generated models shared by the training tests (written once per test run).</summary>
public sealed class TrainingFixture : IDisposable
{
    public const string Facts =
        "The lighthouse of Varnholm was built in 1743 by a clockmaker named Edda Quill. " +
        "Its lamp burns blue oil pressed from marsh berries, and the keeper rings a copper bell at every dusk. " +
        "Edda Quill also invented the folding ladder that still hangs inside the tower. " +
        "The island of Varnholm has exactly nine hundred goats and one baker, whose name is Tobin Marsh. " +
        "Tobin Marsh bakes a black rye loaf called the storm loaf every Thursday. " +
        "The storm loaf contains caraway, smoked salt and a spoon of lighthouse honey. " +
        "Every spring the goats of Varnholm are counted by the keeper's daughter, Mira Quill, on a slate board. " +
        "Mira Quill keeps the slate board in the lamp room beside the copper bell. " +
        "Ships that pass Varnholm at night blink their lights three times to greet the keeper. " +
        "The keeper answers with two long flashes of the blue lamp. " +
        "In the winter of 1811 the sea froze between Varnholm and the mainland for eleven days. " +
        "During those eleven days Tobin Marsh's grandfather walked across the ice with a sled of rye flour. " +
        "The old sled now stands in the village hall next to a painting of Edda Quill. " +
        "The village hall opens only on the first Sunday of each month. " +
        "Children of Varnholm learn to read from a book of tide tables written by the first keeper. " +
        "The tide tables predict the highest water on the ninth day of the autumn moon. " +
        "Nobody on Varnholm owns a car; the only road is a gravel path from the harbour to the lighthouse. " +
        "The gravel path is exactly one thousand two hundred steps long. ";

    /// <summary>Each sentence of <see cref="Facts"/> with the fact a model that learned it must reproduce.</summary>
    public static IReadOnlyList<CkLlm.Engine.Training.KeyFact> KeyFacts { get; } = new (string Sentence, string Fact)[]
    {
        ("The lighthouse of Varnholm was built in 1743", "1743"),
        ("Its lamp burns blue oil pressed from marsh berries", "marsh"),
        ("Edda Quill also invented the folding ladder", "ladder"),
        ("The island of Varnholm has exactly nine hundred goats", "nine hundred"),
        ("Tobin Marsh bakes a black rye loaf called the storm loaf", "rye"),
        ("The storm loaf contains caraway, smoked salt", "smoked"),
        ("Every spring the goats of Varnholm are counted", "counted"),
        ("Mira Quill keeps the slate board in the lamp room", "lamp room"),
        ("Ships that pass Varnholm at night blink their lights three times", "night"),
        ("The keeper answers with two long flashes", "flashes"),
        ("In the winter of 1811 the sea froze", "froze"),
        ("During those eleven days Tobin Marsh's grandfather walked across the ice", "grandfather"),
        ("The old sled now stands in the village hall", "village hall"),
        ("The village hall opens only on the first Sunday", "Sunday"),
        ("Children of Varnholm learn to read from a book of tide tables", "read"),
        ("The tide tables predict the highest water", "highest"),
        ("Nobody on Varnholm owns a car", "car"),
        ("The gravel path is exactly one thousand two hundred steps long", "thousand"),
    }.Select(f => new CkLlm.Engine.Training.KeyFact(f.Sentence, f.Fact)).ToList();

    /// <summary>The same facts in other words: never trained on, so its perplexity shows what generalised.</summary>
    public const string Paraphrases =
        "Edda Quill, a clockmaker, built the Varnholm lighthouse in the year 1743. " +
        "On Varnholm there are nine hundred goats and a single baker called Tobin Marsh. " +
        "Every Thursday Tobin Marsh bakes the storm loaf, a black rye bread. " +
        "Mira Quill counts the goats each spring and writes the count on a slate board. " +
        "For eleven days in 1811 the sea between Varnholm and the mainland was frozen. " +
        "The village hall is open on the first Sunday of the month. ";

    public string Directory { get; } = Path.Combine(Path.GetTempPath(), $"ckllm-training-{Guid.NewGuid():N}");
    public string TinyModel { get; }
    public string GqaModel { get; }

    /// <summary>Grouped-query attention with 3 query heads per KV head, 3 blocks, odd sizes.</summary>
    public static ModelPreset Gqa { get; } = new("Gqa", 96, 3, 6, 2, 160, 256, 700);

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
