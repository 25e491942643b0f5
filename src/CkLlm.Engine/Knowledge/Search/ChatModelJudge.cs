using CkLlm.Engine.Model;
using LLama;
using LLama.Common;
using LLama.Native;

namespace CkLlm.Engine.Knowledge.Search;

/// <summary>
/// A loaded chat model as a pointwise relevance judge: for each passage it reads "does this passage answer the
/// question? Answer yes or no" and the score is P(yes) against P(no) from the next-token logits (no text is
/// generated). Only as good as the model: a small chat model is a weak judge; a real reranker is better and cheaper.
/// </summary>
public sealed class ChatModelJudge(LoadedModel model) : IReranker
{
    private const int MaxPromptTokens = 1024;
    private readonly object _gate = new();

    public string Name => "judge:" + model.Name;

    internal static string Prompt(string query, string passage) =>
        $"Passage:\n{passage}\n\nQuestion: {query}\nDoes the passage answer the question? Answer yes or no.\nAnswer:";

    public IReadOnlyList<double> Score(string query, IReadOnlyList<string> passages, CancellationToken cancellationToken = default)
    {
        var scores = new double[passages.Count];
        lock (_gate)
        {
            using var use = model.AcquireUse();
            var weights = model.Weights;
            int window = Math.Min(MaxPromptTokens, Math.Max(64, model.ContextSize > 0 ? model.ContextSize : weights.ContextSize));
            var parameters = new ModelParams(model.Path) { ContextSize = (uint)window, BatchSize = (uint)window, UBatchSize = (uint)window, GpuLayerCount = 0 };
            using var context = weights.CreateContext(parameters);
            var yes = AnswerTokens(weights, " yes", " Yes", "yes", "Yes");
            var no = AnswerTokens(weights, " no", " No", "no", "No");
            for (int i = 0; i < passages.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var tokens = Tokens(weights, query, passages[i], window);
                context.NativeHandle.MemoryClear();
                var batch = new LLamaBatch();
                for (int t = 0; t < tokens.Length; t++) batch.Add(tokens[t], t, LLamaSeqId.Zero, t == tokens.Length - 1);
                var status = context.Decode(batch);
                if (status != DecodeResult.Ok) throw new InvalidOperationException($"llama.cpp failed to decode the judge prompt ({status}).");
                var logits = context.NativeHandle.GetLogitsIth(tokens.Length - 1);
                scores[i] = 1.0 / (1.0 + Math.Exp(LogSumExp(logits, no) - LogSumExp(logits, yes)));
            }
        }
        return scores;
    }

    // The prompt with the passage cut so it fits the window (the question and the instruction are never cut).
    private static LLamaToken[] Tokens(LLamaWeights weights, string query, string passage, int window)
    {
        var tokens = weights.Tokenize(Prompt(query, passage), true, false, System.Text.Encoding.UTF8);
        if (tokens.Length <= window) return tokens;
        int fixedPart = weights.Tokenize(Prompt(query, ""), true, false, System.Text.Encoding.UTF8).Length;
        var passageTokens = weights.Tokenize(passage, false, false, System.Text.Encoding.UTF8);
        var decoder = new StreamingTokenDecoder(System.Text.Encoding.UTF8, weights);
        foreach (var t in passageTokens.Take(Math.Max(0, window - fixedPart - 4))) decoder.Add(t);
        var cut = weights.Tokenize(Prompt(query, decoder.Read()), true, false, System.Text.Encoding.UTF8);
        return cut.Length <= window ? cut : cut[^window..];
    }

    /// <summary>First token of each spelling of the answer word (distinct).</summary>
    private static int[] AnswerTokens(LLamaWeights weights, params string[] spellings) =>
        spellings.Select(s => weights.Tokenize(s, false, false, System.Text.Encoding.UTF8)).Where(t => t.Length > 0).Select(t => (int)t[0]).Distinct().ToArray();

    private static double LogSumExp(Span<float> logits, int[] ids)
    {
        double max = double.NegativeInfinity, sum = 0;
        foreach (var i in ids) max = Math.Max(max, logits[i]);
        foreach (var i in ids) sum += Math.Exp(logits[i] - max);
        return max + Math.Log(sum);
    }
}
