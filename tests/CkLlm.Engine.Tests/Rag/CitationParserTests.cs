using CkLlm.Engine.Rag;

namespace CkLlm.Engine.Tests.Rag;

public class CitationParserTests
{
    [Theory]
    [InlineData("Paris [1].", new[] { 1 })]
    [InlineData("A [2, 1] and B [1; 3].", new[] { 2, 1, 3 })]
    [InlineData("A [1][3] b [3]", new[] { 1, 3 })]
    [InlineData("A [2-4].", new[] { 2, 3, 4 })]
    [InlineData("A [4–2].", new[] { 2, 3, 4 })]
    [InlineData("A [1, 3-4]", new[] { 1, 3, 4 })]
    [InlineData("A [ 7 ]", new[] { 7 })]
    [InlineData("no markers, [a], [1a], [x](http://y), [1](http://link)", new int[0])]
    [InlineData("", new int[0])]
    public void FindsEveryMarkerForm(string answer, int[] expected) => Assert.Equal(expected, CitationParser.Parse(answer));

    [Fact]
    public void HugeRangeIsReadAsItsEnds() => Assert.Equal([1, 100000], CitationParser.Parse("[1-100000]"));

    [Fact]
    public void MarkersWithoutPassageAreUnknown()
    {
        var (cited, unknown) = CitationParser.Classify("See [1] and [3][0] and [2-5].", 3);
        Assert.Equal([1, 3, 2], cited);
        Assert.Equal([0, 4, 5], unknown);
    }

    [Fact]
    public void NullAnswerHasNoCitations() => Assert.Empty(CitationParser.Parse(null));
}
