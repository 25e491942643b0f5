using System.Security.Cryptography;
using CkLlm.Engine.Model.Gguf;
using CkLlm.Engine.Model;
using LLama;
using LLama.Common;
using LLama.Native;

namespace CkLlm.Engine.Knowledge.Embedding;

/// <summary>A GGUF model used as an embedder through LLamaSharp (mean pooling, L2-normalised by LLamaSharp).</summary>
public sealed class GgufEmbedder : IEmbedder
{
    private const uint RequestedContext = 512;
    private readonly object _gate = new();
    private readonly LLamaWeights _weights;
    private readonly LLamaEmbedder _embedder;

    public GgufEmbedder(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Embedding model '{path}' does not exist.", path);
        GgufValidator.Validate(path); // llama.cpp aborts the process on many malformed files
        NativeBackend.EnsureInitialized(); // routes llama.cpp's log before the first native call
        var parameters = new ModelParams(path)
        {
            Embeddings = true,
            PoolingType = LLamaPoolingType.Mean,
            ContextSize = RequestedContext,
            BatchSize = RequestedContext,
            UBatchSize = RequestedContext,
            GpuLayerCount = 0,
        };
        _weights = LLamaWeights.LoadFromFile(parameters);
        _embedder = new LLamaEmbedder(_weights, parameters);
        Dimensions = _embedder.EmbeddingSize;
        MaxTokens = (int)Math.Min(RequestedContext, (uint)Math.Max(16, _weights.ContextSize)) - 2;
        Id = $"gguf:{Path.GetFileName(path)}:{Fingerprint(path)}";
        ModelPath = path;
    }

    public string Id { get; }
    public string ModelPath { get; }
    public int Dimensions { get; }
    public int MaxTokens { get; }

    public int CountTokens(string text)
    {
        lock (_gate) return _weights.Tokenize(text, false, false, System.Text.Encoding.UTF8).Length;
    }

    public float[][] Embed(IReadOnlyList<string> texts, CancellationToken cancellationToken = default)
    {
        var result = new float[texts.Count][];
        lock (_gate)
        {
            for (int i = 0; i < texts.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var vectors = _embedder.GetEmbeddings(texts[i], cancellationToken).GetAwaiter().GetResult();
                result[i] = vectors[0];
            }
        }
        return result;
    }

    /// <summary>Size plus a hash of the first MiB: cheap, and a different model (or quantisation) gets a different id.</summary>
    private static string Fingerprint(string path)
    {
        using var stream = File.OpenRead(path);
        var buffer = new byte[Math.Min(stream.Length, 1 << 20)];
        stream.ReadExactly(buffer);
        var hash = SHA256.HashData(buffer);
        return $"{stream.Length:x}-{Convert.ToHexString(hash, 0, 6).ToLowerInvariant()}";
    }

    public void Dispose()
    {
        _embedder.Dispose();
        _weights.Dispose();
    }
}
