using CkLlm.Engine.Model;
using CkLlm.Engine.Model.Gguf;
using LLama;
using LLama.Common;
using LLama.Native;

namespace CkLlm.Engine.Knowledge.Search;

/// <summary>
/// A GGUF cross-encoder reranker (bge-reranker style: rank pooling over a classification head) run by LLamaSharp's
/// <see cref="LLamaReranker"/>. The file is checked in managed code first: llama.cpp aborts the whole process when a
/// model without a classification head is asked for rank pooling.
/// </summary>
public sealed class GgufReranker : IReranker, IDisposable
{
    private const uint ContextSize = 512;
    private const uint RankPooling = 4; // LLAMA_POOLING_TYPE_RANK
    private readonly object _gate = new();
    private readonly LLamaWeights _weights;
    private readonly LLamaReranker _reranker;

    public GgufReranker(string path)
    {
        path = System.IO.Path.GetFullPath(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"Reranker model '{path}' does not exist.", path);
        try
        {
            GgufValidator.Validate(path);
        }
        catch (GgufFormatException e)
        {
            throw new NotARerankerException(path, e.Message);
        }
        CheckIsReranker(path);
        NativeBackend.EnsureInitialized();
        var parameters = new ModelParams(path)
        {
            Embeddings = true, PoolingType = LLamaPoolingType.Rank, ContextSize = ContextSize, BatchSize = ContextSize, UBatchSize = ContextSize,
            GpuLayerCount = 0,
        };
        try { _weights = LLamaWeights.LoadFromFile(parameters); }
        catch (LLama.Exceptions.LoadWeightsFailedException e) { throw new NotARerankerException(path, "llama.cpp could not load it (" + e.Message + ")"); }
        _reranker = new LLamaReranker(_weights, parameters);
        Name = System.IO.Path.GetFileName(path);
        Path = path;
    }

    public string Name { get; }
    public string Path { get; }

    /// <summary>Throws <see cref="NotARerankerException"/> unless the GGUF declares rank pooling and has a classification head.</summary>
    public static void CheckIsReranker(string path)
    {
        var file = GgufReader.Read(path);
        var architecture = file.GetStringOrNull("general.architecture") ?? "";
        var pooling = file.GetUInt32OrNull($"{architecture}.pooling_type");
        if (pooling != RankPooling)
            throw new NotARerankerException(path, pooling is null ? "it declares no pooling type (a chat or embedding model)" : $"its pooling type is {pooling}, not rank ({RankPooling})");
        bool head = file.FindTensor("cls.weight") is not null || file.FindTensor("cls.output.weight") is not null;
        if (!head) throw new NotARerankerException(path, "it has no classification head (cls or cls.output tensors)");
    }

    /// <summary>Sigmoid of the cross-encoder's logit per passage (the query and passage are truncated to the window).</summary>
    public IReadOnlyList<double> Score(string query, IReadOnlyList<string> passages, CancellationToken cancellationToken = default)
    {
        var scores = new double[passages.Count];
        lock (_gate)
        {
            for (int i = 0; i < passages.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var (score, _) = _reranker.GetRelevanceScoreWithTokenCount(query, Fit(query, passages[i]), normalize: true, cancellationToken).GetAwaiter().GetResult();
                scores[i] = score;
            }
        }
        return scores;
    }

    // Query plus passage must fit one batch; the passage's tail is cut.
    private string Fit(string query, string passage)
    {
        int budget = (int)ContextSize - _weights.Tokenize(query, true, false, System.Text.Encoding.UTF8).Length - 8;
        var tokens = _weights.Tokenize(passage, false, false, System.Text.Encoding.UTF8);
        if (tokens.Length <= budget) return passage;
        var decoder = new StreamingTokenDecoder(System.Text.Encoding.UTF8, _weights);
        foreach (var t in tokens.Take(Math.Max(0, budget))) decoder.Add(t);
        return decoder.Read();
    }

    public void Dispose()
    {
        _reranker.Dispose();
        _weights.Dispose();
    }
}
