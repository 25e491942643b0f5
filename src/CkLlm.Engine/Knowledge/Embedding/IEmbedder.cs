namespace CkLlm.Engine.Knowledge.Embedding;

/// <summary>Turns texts into L2-normalised vectors. Implementations are thread-safe.</summary>
public interface IEmbedder : IDisposable
{
    /// <summary>Stable identity recorded in the knowledge base, e.g. "all-MiniLM-L6-v2".</summary>
    string Id { get; }

    int Dimensions { get; }

    /// <summary>Longest input in tokens the model sees; anything longer would be silently truncated.</summary>
    int MaxTokens { get; }

    /// <summary>Tokens the embedder's own tokenizer produces for the text, without special tokens.</summary>
    int CountTokens(string text);

    float[][] Embed(IReadOnlyList<string> texts, CancellationToken cancellationToken = default);
}
