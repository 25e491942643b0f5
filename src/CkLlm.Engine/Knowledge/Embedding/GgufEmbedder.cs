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
        Id = $"gguf:{Path.GetFileName(path)}:sha256-{FileHash(path)}";
        LegacyId = $"gguf:{Path.GetFileName(path)}:{LegacyFingerprint(path)}";
        Locator = path;
    }

    public string Id { get; }

    /// <summary>The id knowledge bases recorded before the whole-file hash (size plus a hash of the first MiB).</summary>
    public string LegacyId { get; }

    /// <summary>The model file's full path.</summary>
    public string Locator { get; }
    public int Dimensions { get; }
    public int MaxTokens { get; }

    public bool Identifies(string recordedId) => recordedId == Id || recordedId == LegacyId;

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

    /// <summary>SHA-256 of the whole file: two files that differ anywhere (a fine-tuned copy with the same header
    /// and size) get different ids. Hashing runs once per load; it is fast next to loading the weights.</summary>
    private static string FileHash(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream), 0, 16).ToLowerInvariant();
    }

    private static string LegacyFingerprint(string path)
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
