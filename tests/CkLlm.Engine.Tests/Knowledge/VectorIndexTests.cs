using System.Numerics.Tensors;
using CkLlm.Engine.Knowledge.Storage;

namespace CkLlm.Engine.Tests.Knowledge;

/// <summary>
/// Search quality of <see cref="VectorIndex"/> against a brute-force reference: the HNSW graph must reach high recall
/// on data with structure when queries come from the same distribution, ef_search must actually change the search,
/// and the exact path must return exactly the brute-force answer, also after removals and a save/load.
/// </summary>
public class VectorIndexTests
{
    private const int Dims = 64;

    [Fact]
    public void GraphRecallAt10OnClusteredDataIsAtLeast099()
    {
        var (data, queries) = Clustered(count: 3000, queries: 50, seed: 3);
        using var index = NewIndex(data, exactSearchLimit: 0);
        Assert.False(index.UsesExactSearch);
        index.SetExpansionSearch(256);

        Assert.True(Recall(index, data, queries) >= 0.99);
    }

    [Fact]
    public void ExpansionSearchTakesEffect()
    {
        // Isotropic noise is the hard case: a tiny candidate list must miss neighbours that a large one finds.
        var rng = new Random(5);
        var data = Enumerable.Range(0, 3000).Select(_ => Unit(Gaussian(rng))).ToArray();
        var queries = Enumerable.Range(0, 50).Select(_ => Unit(Gaussian(rng))).ToArray();
        using var index = NewIndex(data, exactSearchLimit: 0);

        index.SetExpansionSearch(10);
        var narrow = Recall(index, data, queries);
        index.SetExpansionSearch(1000);
        var wide = Recall(index, data, queries);

        Assert.True(wide >= 0.97, $"recall at ef 1000 was {wide}");
        Assert.True(narrow < wide - 0.1, $"recall at ef 10 ({narrow}) is not clearly below ef 1000 ({wide})");
    }

    [Fact]
    public void ExactPathReturnsTheBruteForceAnswerAfterRemovalsAndReload()
    {
        var (data, queries) = Clustered(count: 600, queries: 20, seed: 9);
        // Unnormalised input: the scan must still rank and score by cosine.
        var scaled = data.Select((v, i) => v.Select(x => x * (1 + i % 7)).ToArray()).ToArray();
        using var index = NewIndex(scaled, exactSearchLimit: 1000);
        Assert.True(index.UsesExactSearch);
        AssertExact(index, data, Enumerable.Range(1, data.Length).Select(i => (long)i).ToHashSet(), queries);

        var removed = Enumerable.Range(1, data.Length).Where(i => i % 3 == 0).Select(i => (long)i).ToList();
        index.Remove(removed);
        var live = Enumerable.Range(1, data.Length).Select(i => (long)i).Except(removed).ToHashSet();
        AssertExact(index, data, live, queries);

        var path = Path.Combine(Path.GetTempPath(), "ckllm-vi-" + Guid.NewGuid().ToString("N") + ".usearch");
        try
        {
            index.Generation = 4;
            index.Save(path);
            using var loaded = new VectorIndex(Dims, 16, 128, 64, exactSearchLimit: 1000);
            Assert.Null(loaded.TryLoad(path, 4, live));
            AssertExact(loaded, data, live, queries);
        }
        finally
        {
            File.Delete(path);
            File.Delete(VectorIndex.SidecarPath(path));
        }
    }

    [Fact]
    public void IndexSwitchesToTheGraphWhenItOutgrowsTheExactLimit()
    {
        var (data, queries) = Clustered(count: 400, queries: 20, seed: 11);
        using var index = new VectorIndex(Dims, 16, 128, 256, exactSearchLimit: 300);
        index.Add(Ids(0, 300), data[..300]);
        Assert.True(index.UsesExactSearch);
        index.Add(Ids(300, 400), data[300..]);
        Assert.False(index.UsesExactSearch);
        Assert.True(Recall(index, data, queries) >= 0.99);

        index.Remove(Ids(300, 400));
        Assert.True(index.UsesExactSearch);
        AssertExact(index, data, Ids(0, 300).ToHashSet(), queries);
    }

    [Fact]
    public void NegativeExactLimitIsRefused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new VectorIndex(Dims, 16, 128, 64, exactSearchLimit: -1));

    private static VectorIndex NewIndex(float[][] data, int exactSearchLimit)
    {
        var index = new VectorIndex(Dims, 16, 128, 64, exactSearchLimit);
        index.Add(Ids(0, data.Length), data);
        return index;
    }

    private static long[] Ids(int from, int to) => Enumerable.Range(from + 1, to - from).Select(i => (long)i).ToArray();

    private static long[] BruteForce(float[][] data, ISet<long> live, float[] query, int k) =>
        live.OrderByDescending(id => TensorPrimitives.CosineSimilarity(query, data[id - 1])).ThenBy(id => id).Take(k).ToArray();

    private static double Recall(VectorIndex index, float[][] data, float[][] queries)
    {
        var all = Enumerable.Range(1, data.Length).Select(i => (long)i).ToHashSet();
        double found = 0;
        foreach (var q in queries)
        {
            var truth = BruteForce(data, all, q, 10);
            found += index.Search(q, 10).Count(h => truth.Contains(h.Id)) / 10.0;
        }
        return found / queries.Length;
    }

    private static void AssertExact(VectorIndex index, float[][] data, ISet<long> live, float[][] queries)
    {
        foreach (var q in queries)
        {
            var hits = index.Search(q, 10);
            Assert.Equal(BruteForce(data, live, q, 10), hits.Select(h => h.Id).ToArray());
            foreach (var (id, similarity) in hits)
                Assert.Equal(TensorPrimitives.CosineSimilarity(q, data[id - 1]), similarity, 4);
        }
    }

    /// <summary>Unit vectors around 40 centres; queries are fresh samples around the same centres.</summary>
    private static (float[][] Data, float[][] Queries) Clustered(int count, int queries, int seed)
    {
        var rng = new Random(seed);
        var centres = Enumerable.Range(0, 40).Select(_ => Gaussian(rng)).ToArray();
        float[] Sample()
        {
            var v = Gaussian(rng);
            TensorPrimitives.MultiplyAdd(v, 0.35f, centres[rng.Next(centres.Length)], v);
            return Unit(v);
        }
        return (Enumerable.Range(0, count).Select(_ => Sample()).ToArray(), Enumerable.Range(0, queries).Select(_ => Sample()).ToArray());
    }

    private static float[] Gaussian(Random rng)
    {
        var v = new float[Dims];
        for (int d = 0; d < Dims; d++)
            v[d] = (float)(Math.Sqrt(-2 * Math.Log(1.0 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
        return v;
    }

    private static float[] Unit(float[] v)
    {
        TensorPrimitives.Divide(v, TensorPrimitives.Norm(v), v);
        return v;
    }
}
