using CkLlm.Engine.Rag;

namespace CkLlm.Engine.Tests.Rag;

public class PassageFitterTests
{
    private static FittedPrompt Fit(IReadOnlyList<RagPassage> passages, int contextSize, int maxTokens, int margin = 4, string question = "What is it?")
    {
        var generator = new FakeGenerator(contextSize);
        var builder = new RagPromptBuilder(boundary: "fixedboundary1");
        return PassageFitter.Fit(passages, included => generator.FormatChat(builder.System, builder.BuildUser(question, included)).Prompt,
            FakeGenerator.Count, contextSize, maxTokens, margin);
    }

    [Fact]
    public void EverythingFitsInALargeWindow()
    {
        var passages = new[] { Passages.Long("a.md", 3), Passages.Long("b.md", 3) };
        var fitted = Fit(passages, 4096, 256);
        Assert.Equal(2, fitted.Passages.Count);
        Assert.Equal(0, fitted.Dropped);
        Assert.Equal(0, fitted.Trimmed);
        Assert.DoesNotContain(fitted.Passages, p => p.Trimmed);
        Assert.Equal(FakeGenerator.Count(fitted.Prompt), fitted.PromptTokens);
    }

    [Theory]
    [InlineData(400, 64)]
    [InlineData(380, 100)]
    [InlineData(600, 32)]
    [InlineData(260, 16)]
    public void LongPassagesInATinyWindowNeverOverflow(int contextSize, int maxTokens)
    {
        var passages = Enumerable.Range(0, 5).Select(i => Passages.Long($"{(char)('a' + i)}.md", 40, 100 * i + 1)).ToArray();
        var fitted = Fit(passages, contextSize, maxTokens);
        Assert.True(FakeGenerator.Count(fitted.Prompt) + maxTokens + 4 <= contextSize, $"{FakeGenerator.Count(fitted.Prompt)} + {maxTokens} > {contextSize}");
        Assert.Equal(FakeGenerator.Count(fitted.Prompt), fitted.PromptTokens);
        Assert.NotEmpty(fitted.Passages);
        Assert.Equal(passages.Length, fitted.Passages.Count + fitted.Dropped);
        // Rank order kept; only the last included passage may be trimmed.
        Assert.Equal(Enumerable.Range(1, fitted.Passages.Count), fitted.Passages.Select(p => p.Number));
        Assert.All(fitted.Passages.SkipLast(1), p => Assert.False(p.Trimmed));
        var last = fitted.Passages[^1];
        Assert.True(last.Trimmed);
        Assert.Equal(1, fitted.Trimmed);
        // Trimmed on a word boundary: a prefix of the original, followed by whitespace there.
        var original = passages[last.Number - 1].Text;
        Assert.StartsWith(last.Text, original);
        Assert.True(char.IsWhiteSpace(original[last.Text.Length]));
        Assert.Contains(last.Text, fitted.Prompt);
    }

    [Fact]
    public void TrimmedPassageLineRangeShrinksToTheLinesKept()
    {
        var passage = Passages.Long("a.md", 40, firstLine: 101);
        var fitted = Fit([passage], 400, 64);
        var kept = Assert.Single(fitted.Passages);
        Assert.True(kept.Trimmed);
        var linesKept = kept.Text.Split('\n').Length;
        Assert.Equal(101, kept.Passage.LineStart);
        Assert.Equal(100 + linesKept, kept.Passage.LineEnd);
        Assert.True(kept.Passage.LineEnd < 140);
        // Cut at a line end when that keeps most of the text.
        Assert.EndsWith("x9", kept.Text);
    }

    [Fact]
    public void QuestionThatCannotFitIsAClearError()
    {
        var question = string.Join(' ', Enumerable.Repeat("word", 500));
        var error = Assert.Throws<RagBudgetException>(() => Fit([Passages.Long("a.md", 2)], 512, 64, question: question));
        Assert.Contains("-MaxTokens", error.Message);
        Assert.Contains("512", error.Message);
    }

    [Fact]
    public void MaxTokensAsLargeAsTheWindowIsAClearError() =>
        Assert.Throws<RagBudgetException>(() => Fit([Passages.Long("a.md", 2)], 512, 512));

    [Fact]
    public void AScrapOfALaterPassageIsDroppedNotKept()
    {
        // The first passage fills nearly the whole budget; the second could only keep a few words.
        var first = Passages.Long("a.md", 3);
        var generator = new FakeGenerator(10_000);
        var builder = new RagPromptBuilder(boundary: "fixedboundary1");
        string Render(IReadOnlyList<PromptPassage> p) => generator.FormatChat(builder.System, builder.BuildUser("Q?", p)).Prompt;
        var withFirst = FakeGenerator.Count(Render([new PromptPassage(1, first, first.Text, false)]));
        var context = withFirst + 40 + 30; // 30 tokens for the second passage: its label alone takes most of them
        var fitted = PassageFitter.Fit([first, Passages.Long("b.md", 10)], Render, FakeGenerator.Count, context, 40, 0);
        Assert.Single(fitted.Passages);
        Assert.Equal(1, fitted.Dropped);
        Assert.Equal(0, fitted.Trimmed);
    }

    [Fact]
    public void InvalidBudgetArgumentsAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Fit([], 0, 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => Fit([], 100, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Fit([], 100, 10, margin: -1));
    }
}
