namespace CkLlm.Engine.Inference;

/// <summary>A prompt as a model will see it: the text after its chat template, how it was made, and the stop strings
/// the format implies.</summary>
/// <param name="Format">"template" (the model's own chat template), "fallback" (ChatML-like text) or "none" (raw prompt).</param>
public sealed record FormattedPrompt(string Text, string Format, IReadOnlyList<string> Stops);

/// <summary>
/// A chat/completion model the session holds and the cmdlets, RAG and (later) a server use: the llama.cpp model
/// (<see cref="Model.LoadedModel"/>) today; a remote OpenAI-compatible endpoint is one more implementation.
/// </summary>
/// <remarks>Implementations are thread-safe: several completions may run at once. Dispose may be called while a
/// completion runs (Remove-CkModel in another runspace); the running completion must end normally.</remarks>
public interface IChatModel : IDisposable
{
    /// <summary>The name the session knows it by.</summary>
    string Name { get; }

    /// <summary>Context window of one completion, in tokens.</summary>
    int ContextSize { get; }

    /// <summary>True once disposed (removed from the session).</summary>
    bool IsDisposed { get; }

    /// <summary>Tokens the model will see for this exact prompt text, never fewer than the real count (RAG's budget
    /// relies on it). A backend without a tokenizer returns a documented upper estimate.</summary>
    int CountTokens(string prompt);

    /// <summary>Texts the model's tokenizer turns into special (control) tokens when it parses a prompt; RAG breaks them in
    /// retrieved text (see <see cref="Rag.ControlTokenDefuser"/>). Default: none beyond the known template families.</summary>
    IReadOnlyCollection<string> SpecialTokenTexts => [];

    /// <summary>The prompt text of <paramref name="request"/> (a chat goes through the model's chat format).</summary>
    /// <exception cref="ArgumentException">A chat message without a role or content.</exception>
    FormattedPrompt Format(CompletionRequest request);

    /// <summary>Streams the completion; the last chunk carries the result. Cancellation ends the stream with
    /// <see cref="FinishReason.Cancelled"/>, not an exception.</summary>
    /// <exception cref="ArgumentException">The request is invalid or its prompt does not fit the context.</exception>
    /// <exception cref="ObjectDisposedException">The model was removed before the completion started.</exception>
    IAsyncEnumerable<CompletionChunk> StreamAsync(CompletionRequest request, CancellationToken cancellationToken = default);

    /// <summary>
    /// Streams synchronously (the cmdlets' pipeline thread). The default blocks on <see cref="StreamAsync"/>; a local
    /// backend overrides it to skip the async hand-offs per token.
    /// </summary>
    IEnumerable<CompletionChunk> Stream(CompletionRequest request, CancellationToken cancellationToken = default) =>
        StreamAsync(request, cancellationToken).ToBlockingEnumerable(cancellationToken);

    /// <summary>
    /// A conversation's state on this model (a chat keeps one for its life). The default keeps nothing and sends the
    /// whole prompt each time; the llama.cpp model keeps a context whose KV cache survives between turns.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The model was removed.</exception>
    IChatSequence OpenSequence()
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        return new StatelessChatSequence(this);
    }
}

/// <summary>Conveniences over any <see cref="IChatModel"/>.</summary>
public static class ChatModelExtensions
{
    /// <summary>Completes synchronously; <paramref name="onText"/> (optional) receives each piece of text as it arrives.</summary>
    public static CompletionResult Complete(this IChatModel model, CompletionRequest request, CancellationToken cancellationToken = default,
        Action<string>? onText = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        foreach (var chunk in model.Stream(request, cancellationToken))
        {
            if (chunk.Result is not null) return chunk.Result;
            onText?.Invoke(chunk.Text);
        }
        throw new InvalidOperationException("The completion ended without a result.");
    }
}
