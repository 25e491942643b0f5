using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Knowledge.Storage;
using CkLlm.Engine.Model.Generation;

namespace CkLlm.Engine.Tests.Knowledge;

public class KnowledgeStorageTests
{
    private static readonly string[] Facts =
    [
        "The lighthouse keeper lights the lamp at dusk every evening.",
        "Sourdough bread rises slowly because of wild yeast.",
        "Glaciers carve U-shaped valleys over thousands of years.",
        "A violin has four strings tuned in perfect fifths.",
    ];

    private static KnowledgeBase NewKb(KnowledgeTestDirectory dir, KnowledgeBaseOptions? options = null)
    {
        var kb = KnowledgeBase.Open(dir.Kb, options);
        for (int i = 0; i < Facts.Length; i++) kb.AddText(Facts[i], $"fact{i}");
        return kb;
    }

    [Fact]
    public void ChangedFileIsUpdatedAndItsOldChunksAreGoneFromBothIndexes()
    {
        using var dir = new KnowledgeTestDirectory();
        var file = dir.Write("notes.txt", "Penguins live in Antarctica.");
        using var kb = KnowledgeBase.Open(dir.Kb);
        Assert.Equal(IngestStatus.Added, kb.AddFile(file).Status);
        File.WriteAllText(file, "Camels cross the Sahara desert.");
        var updated = kb.AddFile(file);
        Assert.Equal(IngestStatus.Updated, updated.Status);
        Assert.Empty(kb.Search("penguins", new SearchOptions { Mode = SearchMode.Keyword }));
        Assert.DoesNotContain(kb.Search("penguins Antarctica", new SearchOptions { Mode = SearchMode.Vector, Top = 10 }), h => h.Text.Contains("Penguins"));
        Assert.Equal(1, kb.GetStatistics().Chunks);
        Assert.Equal(1, kb.GetStatistics().IndexedVectors);
    }

    [Fact]
    public void RemoveAndPruneDeleteSourcesAndTheirVectors()
    {
        using var dir = new KnowledgeTestDirectory();
        var file = dir.Write("gone.txt", "Temporary note about volcanoes erupting.");
        using var kb = NewKb(dir);
        kb.AddFile(file);
        File.Delete(file);
        Assert.Equal(file, Assert.Single(kb.GetMissingSources()).Source);
        var pruned = kb.Prune();
        Assert.Equal(IngestStatus.Removed, Assert.Single(pruned).Status);
        var removed = kb.Remove([kb.GetSource("fact1")!]);
        Assert.Single(removed);
        var stats = kb.GetStatistics();
        Assert.Equal(3, stats.Sources);
        Assert.Equal(3, stats.IndexedVectors);
        Assert.DoesNotContain(kb.Search("bread yeast", new SearchOptions { Top = 10 }), h => h.Source == "fact1");
    }

    [Fact]
    public void KeywordVectorAndHybridModesAndFilterAndMinScore()
    {
        using var dir = new KnowledgeTestDirectory();
        using var kb = NewKb(dir);
        kb.AddText("Tuning a cello: four strings in fifths, an octave below the viola.", "cello", new Dictionary<string, string> { ["instrument"] = "cello" });
        var keyword = kb.Search("violin strings", new SearchOptions { Mode = SearchMode.Keyword });
        Assert.Equal("fact3", keyword[0].Source);
        var vector = kb.Search("musical instrument tuning", new SearchOptions { Mode = SearchMode.Vector });
        Assert.Contains(vector.Take(2), h => h.Source is "fact3" or "cello");
        Assert.InRange(vector[0].Score, 0.0, 1.0);
        var filtered = kb.Search("strings", new SearchOptions { Filter = new Dictionary<string, string> { ["INSTRUMENT"] = "Cello" } });
        Assert.Equal("cello", Assert.Single(filtered).Source);
        var hybrid = kb.Search("violin strings", new SearchOptions { Top = 10 });
        Assert.Equal("fact3", hybrid[0].Source);
        Assert.Equal(Enumerable.Range(1, hybrid.Count), hybrid.Select(h => h.Rank));
        var confident = kb.Search("violin strings", new SearchOptions { MinScore = 0.5, Top = 10 });
        Assert.NotEmpty(confident);
        Assert.All(confident, h => Assert.True(h.Score >= 0.5));
    }

    [Fact]
    public void OneKeywordMatchGivesTheSameHitsAndScoresAsSeparateSearches()
    {
        using var dir = new KnowledgeTestDirectory();
        using (var kb = NewKb(dir))
        {
            kb.AddText("Strings of a violin and strings of a cello are tuned in fifths; the lamp strings are not.", "mixed");
            kb.AddText("Bread, glaciers and lamps: an index of unrelated words.", "index");
        }
        using var store = new SqliteKnowledgeStore(Path.Combine(dir.Kb, KnowledgeBase.DatabaseFileName), readOnly: true);
        IKnowledgeStore seam = store;
        var weights = new SearchOptions().KeywordWeights;
        const string query = "violin strings lamp bread";
        var all = seam.KeywordSearch(query, 100, weights);
        Assert.True(all.Count >= 4, "the query must match several chunks for the split to mean anything");
        var alsoScore = all.Select(h => h.Id).Append(-1).ToList(); // every match, plus an id that matches nothing

        var (top, others) = seam.KeywordSearchAndScores(query, 2, alsoScore, weights);

        Assert.Equal(seam.KeywordSearch(query, 2, weights), top);
        var expectedOthers = all.Where(h => alsoScore.Contains(h.Id) && !top.Any(t => t.Id == h.Id)).ToList();
        Assert.Equal(expectedOthers.OrderBy(o => o.Id), others.OrderBy(o => o.Id));
        Assert.Equal(all.Count - 2, others.Count);
    }

    [Fact]
    public void HitsFromTheSameSourceAreCollapsed()
    {
        using var dir = new KnowledgeTestDirectory();
        using var kb = KnowledgeBase.Open(dir.Kb, new KnowledgeBaseOptions { ChunkSize = 16, ChunkOverlap = 0 });
        kb.AddText(string.Join("\n", Enumerable.Range(1, 12).Select(i => $"Harbour note {i}: boats moor in the harbour at night.")), "harbour");
        kb.AddText("A harbour master assigns berths to boats.", "master");
        var hits = kb.Search("boats in the harbour", new SearchOptions { Top = 5, MaxPerSource = 2 });
        Assert.True(hits.Count(h => h.Source == "harbour") <= 2);
        Assert.Contains(hits, h => h.Source == "master");
        Assert.Equal(5, kb.Search("boats in the harbour", new SearchOptions { Top = 5, MaxPerSource = 0 }).Count(h => h.Source == "harbour"));
    }

    [Fact]
    public void CorruptIndexFileIsDetectedAndRebuiltFromTheDatabase()
    {
        using var dir = new KnowledgeTestDirectory();
        NewKb(dir).Dispose();
        var index = Path.Combine(dir.Kb, KnowledgeBase.IndexFileName);
        var bytes = File.ReadAllBytes(index);
        // Random bytes in the middle: USearch would open and search this silently.
        new Random(1).NextBytes(bytes.AsSpan(bytes.Length / 2, 64));
        File.WriteAllBytes(index, bytes);
        using var kb = KnowledgeBase.Open(dir.Kb);
        Assert.Equal("index checksum mismatch", kb.IndexRebuildReason);
        Assert.Equal("fact2", kb.Search("valleys carved by ice", new SearchOptions { Mode = SearchMode.Vector })[0].Source);
        // The rebuilt index was saved: the next open trusts it.
        kb.Dispose();
        using var again = KnowledgeBase.Open(dir.Kb);
        Assert.Null(again.IndexRebuildReason);
    }

    [Theory]
    [InlineData("missing")]
    [InlineData("empty")]
    [InlineData("stale")]
    public void MissingEmptyOrStaleIndexIsRebuilt(string damage)
    {
        using var dir = new KnowledgeTestDirectory();
        NewKb(dir).Dispose();
        var index = Path.Combine(dir.Kb, KnowledgeBase.IndexFileName);
        switch (damage)
        {
            case "missing": File.Delete(index); break;
            case "empty": File.WriteAllBytes(index, []); break;
            case "stale":
                var old = File.ReadAllBytes(index);
                var oldSidecar = File.ReadAllText(VectorIndex.SidecarPath(index));
                using (var kb1 = KnowledgeBase.Open(dir.Kb)) kb1.AddText("Owls hunt at night.", "owls");
                File.WriteAllBytes(index, old); // an older, self-consistent index
                File.WriteAllText(VectorIndex.SidecarPath(index), oldSidecar);
                break;
        }
        using var kb = KnowledgeBase.Open(dir.Kb);
        Assert.NotNull(kb.IndexRebuildReason);
        Assert.Equal(kb.GetStatistics().Chunks, kb.GetStatistics().IndexedVectors);
        if (damage == "stale") Assert.Equal("owls", kb.Search("nocturnal birds of prey", new SearchOptions { Mode = SearchMode.Vector })[0].Source);
    }

    [Fact]
    public void TruncatedDatabaseGivesAClearError()
    {
        using var dir = new KnowledgeTestDirectory();
        using (var kb = KnowledgeBase.Open(dir.Kb))
            for (int i = 0; i < 30; i++) kb.AddText(string.Join(" ", Enumerable.Repeat($"filler text number {i} about topic {i}", 40)), $"doc{i}");
        var db = Path.Combine(dir.Kb, KnowledgeBase.DatabaseFileName);
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        foreach (var side in new[] { db + "-wal", db + "-shm" }) File.Delete(side);
        using (var f = new FileStream(db, FileMode.Open)) f.SetLength(f.Length / 2);
        var ex = Assert.Throws<KnowledgeBaseCorruptException>(() => KnowledgeBase.Open(dir.Kb));
        Assert.Contains("damaged", ex.Message);
    }

    [Fact]
    public void GarbageDatabaseGivesAClearError()
    {
        using var dir = new KnowledgeTestDirectory();
        Directory.CreateDirectory(dir.Kb);
        File.WriteAllText(Path.Combine(dir.Kb, KnowledgeBase.DatabaseFileName), new string('x', 8192));
        var ex = Assert.Throws<KnowledgeBaseCorruptException>(() => KnowledgeBase.Open(dir.Kb));
        Assert.Contains(KnowledgeBase.DatabaseFileName, ex.Message);
    }

    [Fact]
    public void VectorOfTheWrongLengthIsRefusedBeforeUSearchSeesIt()
    {
        using var index = new VectorIndex(384, 16, 128, 64);
        Assert.Throws<ArgumentException>(() => index.Add([1], [new float[64]]));
        Assert.Throws<ArgumentException>(() => index.Search(new float[383], 5));
        Assert.Equal(0, index.Count);
    }

    [Fact]
    public void SecondWriterWaitsThenGetsABusyErrorWhileReadersStillSearch()
    {
        using var dir = new KnowledgeTestDirectory();
        using var kb = NewKb(dir, new KnowledgeBaseOptions { WriterLockTimeout = TimeSpan.FromMilliseconds(300) });
        using (WriterLock.Acquire(dir.Kb, TimeSpan.Zero, CancellationToken.None))
        {
            var ex = Assert.Throws<KnowledgeBaseBusyException>(() => kb.AddText("Blocked write.", "blocked"));
            Assert.Contains($"process {Environment.ProcessId}", ex.Message);
            Assert.NotEmpty(kb.Search("lighthouse"));
        }
        Assert.Equal(IngestStatus.Added, kb.AddText("Unblocked write.", "unblocked").Status);
    }

    [Fact]
    public void CancelledIngestCommitsNothingOfThatSource()
    {
        using var dir = new KnowledgeTestDirectory();
        using var kb = NewKb(dir, new KnowledgeBaseOptions { ChunkSize = 16, ChunkOverlap = 0, EmbeddingBatchSize = 2 });
        using var cts = new CancellationTokenSource();
        var progress = new SynchronousProgress<IngestProgress>(p => { if (p.ChunksDone >= 2) cts.Cancel(); });
        var text = string.Join("\n", Enumerable.Range(1, 20).Select(i => $"Paragraph {i} about migrating birds and their routes."));
        Assert.ThrowsAny<OperationCanceledException>(() => kb.AddText(text, "birds", progress: progress, cancellationToken: cts.Token));
        Assert.Null(kb.GetSource("birds"));
        Assert.Equal(4, kb.GetStatistics().Chunks);
    }

    [Fact]
    public void ConcurrentSearchesAndAWriteFromSeveralThreadsAreSafe()
    {
        using var dir = new KnowledgeTestDirectory();
        using var kb = NewKb(dir);
        var queries = new[] { "lighthouse lamp", "bread yeast", "glacier valleys", "violin strings" };
        var results = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.For(0, 40, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            if (i == 20) kb.AddText("Parallel write about kestrels hovering.", "kestrels");
            results.Add(kb.Search(queries[i % 4], new SearchOptions { Top = 1 })[0].Source);
        });
        Assert.Equal(40, results.Count);
        Assert.Equal(10, results.Count(r => r == "fact3"));
        Assert.Equal(5, kb.GetStatistics().IndexedVectors);
    }

    [Fact]
    public void ASecondInstanceSeesWritesOfTheFirstWithoutReopening()
    {
        using var dir = new KnowledgeTestDirectory();
        using var writer = NewKb(dir);
        using var reader = KnowledgeBase.Open(dir.Kb);
        writer.AddText("Comets have icy nuclei and long tails.", "comets");
        Assert.Equal("comets", reader.Search("icy comet tails", new SearchOptions { Mode = SearchMode.Vector })[0].Source);
        writer.Remove([writer.GetSource("comets")!]);
        Assert.DoesNotContain(reader.Search("icy comet tails", new SearchOptions { Mode = SearchMode.Vector, Top = 10 }), h => h.Source == "comets");
    }

    [Fact]
    public void GgufEmbedderWorksAndAKnowledgeBaseRefusesAnEmbedderOfAnotherDimension()
    {
        using var dir = new KnowledgeTestDirectory();
        var model = Path.Combine(dir.Path, "embed.gguf");
        ModelGenerator.Generate(model, new ModelGenerationOptions { Preset = ModelPreset.Tiny, Seed = 1, Corpus = string.Join(" ", Facts), ChatTemplate = null });
        var ggufKb = Path.Combine(dir.Path, "gguf-kb");
        int ggufDims;
        using (var kb = KnowledgeBase.Open(ggufKb, new KnowledgeBaseOptions { EmbeddingModel = model, ChunkSize = 32, ChunkOverlap = 4 }))
        {
            ggufDims = kb.Dimensions;
            Assert.StartsWith("gguf:embed.gguf:", kb.Embedder);
            Assert.NotEqual(384, ggufDims);
            Assert.Equal(IngestStatus.Added, kb.AddText(Facts[0] + " " + Facts[1], "pair").Status);
            Assert.Equal("pair", kb.Search("lighthouse", new SearchOptions { Mode = SearchMode.Vector })[0].Source);
        }
        // Reopening without naming the model uses the recorded one.
        using (var kb = KnowledgeBase.Open(ggufKb)) Assert.Equal(ggufDims, kb.Dimensions);

        NewKb(dir).Dispose(); // MiniLM, 384
        var ex = Assert.Throws<EmbedderMismatchException>(() => KnowledgeBase.Open(dir.Kb, new KnowledgeBaseOptions { EmbeddingModel = model }));
        Assert.Contains("all-MiniLM-L6-v2/384", ex.Message);
        Assert.Contains($"/{ggufDims}", ex.Message);
        var ex2 = Assert.Throws<EmbedderMismatchException>(() => KnowledgeBase.Open(ggufKb, new KnowledgeBaseOptions { EmbeddingModel = "minilm" }));
        Assert.Contains($"/{ggufDims} dimensions", ex2.Message);
    }
}
