using System.Numerics.Tensors;
using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Knowledge.Storage;

namespace CkLlm.Engine.Tests.Knowledge;

/// <summary>The <see cref="IVectorIndex"/> contract, run on both implementations, and the knowledge base using either
/// through <see cref="KnowledgeBaseOptions.VectorIndexFactory"/>.</summary>
public class VectorIndexSeamTests
{
    private const int Dims = 16;

    public static TheoryData<string> Implementations => new() { "hnsw", "memory" };

    private static IVectorIndex Create(string kind) => kind == "hnsw"
        ? VectorIndex.Create(Dims, new KnowledgeBaseOptions { ExactSearchLimit = 0 })
        : InMemoryVectorIndex.Create(Dims, new KnowledgeBaseOptions());

    [Theory]
    [MemberData(nameof(Implementations))]
    public void AddSearchRemoveAndRebuildKeepTheNearestNeighbours(string kind)
    {
        var rng = new Random(7);
        var data = Enumerable.Range(0, 200).Select(_ => Unit(rng)).ToArray();
        using var index = Create(kind);
        index.Add(Enumerable.Range(1, 200).Select(i => (long)i).ToArray(), data);
        index.Add([1L], [Unit(rng)]); // an id already present is left as it is
        Assert.Equal(200, index.Count);

        var query = data[41];
        var hits = index.Search(query, 5);
        Assert.Equal(42L, hits[0].Id);
        Assert.Equal(1f, hits[0].Similarity, 3);
        Assert.True(hits.Zip(hits.Skip(1)).All(p => p.First.Similarity >= p.Second.Similarity));

        index.Remove([42L, 9999L]);
        Assert.Equal(199, index.Count);
        Assert.DoesNotContain(42L, index.Search(query, 5).Select(h => h.Id));

        index.Rebuild([(7L, data[6]), (8L, data[7])], generation: 3);
        Assert.Equal(3, index.Generation);
        Assert.Equal([7L, 8L], index.Keys.Order());
        Assert.Equal(7L, index.Search(data[6], 1)[0].Id);
        Assert.Throws<ArgumentException>(() => index.Search(new float[Dims + 1], 1));
        Assert.Throws<ArgumentException>(() => index.Add([5L], [new float[Dims - 1]]));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void ASavedIndexLoadsBackOnlyWhenItIsPersistent(string kind)
    {
        var rng = new Random(3);
        var path = Path.Combine(Path.GetTempPath(), "ckllm-seam-" + Guid.NewGuid().ToString("N") + ".index");
        try
        {
            using (var index = Create(kind))
            {
                index.Add([1L, 2L], [Unit(rng), Unit(rng)]);
                index.Generation = 5;
                index.Save(path);
            }
            using var reopened = Create(kind);
            var reason = reopened.TryLoad(path, 5, [1L, 2L]);
            if (reopened.IsPersistent)
            {
                Assert.Null(reason);
                Assert.Equal(2, reopened.Count);
            }
            else
            {
                Assert.NotNull(reason);
                Assert.False(File.Exists(path));
            }
        }
        finally
        {
            File.Delete(path);
            File.Delete(VectorIndex.SidecarPath(path));
        }
    }

    [Fact]
    public void AKnowledgeBaseWithTheInMemoryIndexFindsWhatTheDefaultFinds()
    {
        using var dir = new KnowledgeTestDirectory();
        var texts = new[]
        {
            "Granite is a coarse igneous rock rich in quartz and feldspar.",
            "Sourdough bread rises with wild yeast from a starter.",
            "The violin has four strings tuned in fifths.",
        };
        using (var kb = KnowledgeBase.Open(dir.Kb))
            for (var i = 0; i < texts.Length; i++) kb.AddText(texts[i], $"t{i}");

        var vector = new SearchOptions { Mode = SearchMode.Vector, Top = 3 };
        string[] Sources(KnowledgeBase kb) => kb.Search("which stone contains quartz", vector).Select(h => h.Source).ToArray();
        string[] expected;
        using (var kb = KnowledgeBase.Open(dir.Kb)) expected = Sources(kb);
        using var inMemory = KnowledgeBase.Open(dir.Kb, new KnowledgeBaseOptions { VectorIndexFactory = InMemoryVectorIndex.Create });

        Assert.Equal("t0", expected[0]);
        Assert.Equal(expected, Sources(inMemory));
        Assert.NotNull(inMemory.IndexRebuildReason);
        Assert.Equal(3, inMemory.GetStatistics().IndexedVectors);
    }

    private static float[] Unit(Random rng)
    {
        var v = new float[Dims];
        for (var i = 0; i < Dims; i++) v[i] = (float)(rng.NextDouble() * 2 - 1);
        TensorPrimitives.Divide(v, TensorPrimitives.Norm(v), v);
        return v;
    }
}
