using System.Text.RegularExpressions;
using CkLlm.Engine.Inference;
using CkLlm.Engine.Rag;

namespace CkLlm.Engine.Tests.Rag;

/// <summary>
/// A chat model test double whose "tokens" are words and punctuation marks, with a scripted answer. It implements only
/// <see cref="IChatModel.StreamAsync"/>, so RAG reaches it through the interface's default synchronous path, as it
/// would reach a remote backend.
/// </summary>
internal sealed partial class FakeGenerator(int contextSize, string answer = "Paris is the capital [1].", string name = "fake") : IChatModel
{
    public int Calls { get; private set; }
    public CompletionRequest? LastRequest { get; private set; }
    public string Name => name;
    public int ContextSize => contextSize;
    public bool IsDisposed { get; private set; }

    public static int Count(string text) => TokenPattern().Count(text);

    public int CountTokens(string prompt) => Count(prompt);

    public (string Prompt, string Format) FormatChat(string system, string user) => ($"<sys>{system}</sys>\n<user>{user}</user>\n<assistant>", "fake");

    public FormattedPrompt Format(CompletionRequest request)
    {
        var (prompt, format) = FormatChat(request.System ?? "", request.Prompt ?? "");
        return new FormattedPrompt(prompt, format, []);
    }

    public async IAsyncEnumerable<CompletionChunk> StreamAsync(CompletionRequest request,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        Calls++;
        LastRequest = request;
        var prompt = Format(request).Text;
        var pieces = answer.Split(' ');
        for (var i = 0; i < pieces.Length; i++)
        {
            await Task.Yield();
            yield return new CompletionChunk((i == 0 ? "" : " ") + pieces[i], i + 1);
        }
        yield return new CompletionChunk("", pieces.Length, new CompletionResult
        {
            Model = Name, Prompt = prompt, Text = answer, PromptTokens = Count(prompt), CompletionTokens = pieces.Length,
            TokensPerSecond = 100, PromptTokensPerSecond = 1000, FinishReason = FinishReason.Stop, ChatFormat = "fake", Duration = TimeSpan.FromMilliseconds(5),
        });
    }

    public void Dispose() => IsDisposed = true;

    [GeneratedRegex(@"\w+|[^\w\s]")]
    private static partial Regex TokenPattern();
}

internal sealed class FakeRetriever(params RagPassage[] passages) : IRagRetriever
{
    public int Calls { get; private set; }

    public IReadOnlyList<RagPassage> Retrieve(RagRequest request, CancellationToken cancellationToken)
    {
        Calls++;
        return passages.Where(p => p.Score >= request.MinScore).Take(request.Top).ToArray();
    }
}

internal static class Passages
{
    public static RagPassage Make(string source, string text, int? lineStart = null, int? lineEnd = null, string? heading = null, double score = 0.9, int? page = null) =>
        new() { Source = source, Text = text, LineStart = lineStart, LineEnd = lineEnd, Heading = heading, Score = score, Page = page };

    /// <summary>A passage of <paramref name="lines"/> lines of ten words each.</summary>
    public static RagPassage Long(string source, int lines, int firstLine = 1, double score = 0.9)
    {
        var text = string.Join('\n', Enumerable.Range(0, lines).Select(l => string.Join(' ', Enumerable.Range(0, 10).Select(w => $"{source[0]}word{l}x{w}"))));
        return Make(source, text, firstLine, firstLine + lines - 1, score: score);
    }
}
