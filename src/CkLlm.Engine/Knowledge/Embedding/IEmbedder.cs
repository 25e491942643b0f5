namespace CkLlm.Engine.Knowledge.Embedding;

/// <summary>Turns texts into L2-normalised vectors. Implementations are thread-safe.</summary>
public interface IEmbedder : IDisposable
{
    /// <summary>Stable identity recorded in the knowledge base (e.g. "all-MiniLM-L6-v2", or "gguf:name:sha256-..." from
    /// the whole model file): two embedders with the same id produce the same vectors.</summary>
    string Id { get; }

    /// <summary>What <see cref="EmbedderRegistry.Resolve"/> needs to load this embedder again: a registered name
    /// ("MiniLM", "ArcticXs") or a GGUF file path. Recorded in the knowledge base beside <see cref="Id"/>.</summary>
    string Locator { get; }

    int Dimensions { get; }

    /// <summary>True when a knowledge base that recorded <paramref name="recordedId"/> was built by this model (an
    /// embedder may also recognise the ids older versions of CkLlm recorded for it).</summary>
    bool Identifies(string recordedId) => string.Equals(recordedId, Id, StringComparison.Ordinal);

    /// <summary>Longest input in tokens the model sees; anything longer would be silently truncated.</summary>
    int MaxTokens { get; }

    /// <summary>Tokens the embedder's own tokenizer produces for the text, without special tokens.</summary>
    int CountTokens(string text);

    /// <summary>Embeds passages (what is stored).</summary>
    float[][] Embed(IReadOnlyList<string> texts, CancellationToken cancellationToken = default);

    /// <summary>Embeds a search query. Asymmetric models (arctic-embed) need an instruction prefix on queries only.</summary>
    float[] EmbedQuery(string query, CancellationToken cancellationToken = default) => Embed([query], cancellationToken)[0];
}
