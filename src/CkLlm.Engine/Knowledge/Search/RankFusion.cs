namespace CkLlm.Engine.Knowledge.Search;

/// <summary>Reciprocal-rank fusion: score(d) = sum over rankings of weight / (k + rank(d)), ranks from 1.</summary>
internal static class RankFusion
{
    public static List<(long Id, double Score)> Fuse(int k, params (IReadOnlyList<long> Ranking, double Weight)[] rankings)
    {
        var scores = new Dictionary<long, double>();
        foreach (var (ranking, weight) in rankings)
        {
            for (int i = 0; i < ranking.Count; i++)
            {
                scores.TryGetValue(ranking[i], out var s);
                scores[ranking[i]] = s + weight / (k + i + 1);
            }
        }
        return scores.Select(p => (p.Key, p.Value)).OrderByDescending(p => p.Value).ThenBy(p => p.Key).ToList();
    }
}
