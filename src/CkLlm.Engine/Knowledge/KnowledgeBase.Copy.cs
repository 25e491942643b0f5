using CkLlm.Engine.Knowledge.Storage;

namespace CkLlm.Engine.Knowledge;

/// <summary>Copying sources between knowledge bases (a folder and a server, either way) without embedding again.</summary>
public sealed partial class KnowledgeBase
{
    /// <summary>What <see cref="KnowledgeBaseOptions.Embedder"/> takes to open another knowledge base with this one's
    /// embedder (a copy target must be built with the same model).</summary>
    public string EmbedderLocator => _embedder.Locator;

    /// <summary>
    /// Copies one of this knowledge base's sources (from <see cref="GetSources"/>) into <paramref name="target"/> with its
    /// chunks, metadata and vectors as they are, in one transaction there. A source the target already holds with the
    /// same content and metadata is skipped unless <paramref name="force"/>.
    /// </summary>
    /// <exception cref="EmbedderMismatchException">The target was built with another embedder.</exception>
    public IngestResult CopySourceTo(KnowledgeSource source, KnowledgeBase target, bool force = false, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(target);
        if (!target._embedder.Identifies(Embedder) || target.Dimensions != Dimensions)
            throw new EmbedderMismatchException($"'{target.Directory}' was built with {target.Embedder}/{target.Dimensions} dimensions; " +
                $"the vectors of '{Directory}' come from {Embedder}/{Dimensions} and cannot be mixed into it.");
        target.AdoptTextStyleOf(this);
        cancellationToken.ThrowIfCancellationRequested();
        if (!force && target.GetSource(source.Source) is { } existing && existing.ContentHash == source.ContentHash && SameMetadata(existing.Metadata, source.Metadata))
            return new IngestResult { Source = source.Source, Status = IngestStatus.Skipped, Chunks = existing.Chunks, SourceId = existing.Id };
        var exported = WithCorruptionCheck(() => _store.ExportSource(source));
        return target.Commit(exported.Source, exported.Chunks, exported.Vectors, cancellationToken);
    }

    /// <summary>Copied vectors keep the text style they were embedded in: an empty target takes the source's, one that
    /// holds sources already must have the same.</summary>
    private void AdoptTextStyleOf(KnowledgeBase source)
    {
        if (source._textStyle == _textStyle) return;
        lock (_writeGate)
        {
            if (_store.CountSources() > 0)
                throw new EmbedderMismatchException($"'{Directory}' embeds text as {EmbeddingTextStyles.ToMeta(_textStyle)}; the vectors of " +
                    $"'{source.Directory}' were embedded as {EmbeddingTextStyles.ToMeta(source._textStyle)} and cannot be mixed into it. Copy into a new knowledge base.");
            _store.SetMeta(EmbeddingTextStyles.MetaKey, EmbeddingTextStyles.ToMeta(source._textStyle));
            _textStyle = source._textStyle;
        }
    }
}
