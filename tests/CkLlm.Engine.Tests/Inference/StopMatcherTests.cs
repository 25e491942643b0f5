using CkLlm.Engine.Inference;

namespace CkLlm.Engine.Tests.Inference;

public class StopMatcherTests
{
    [Fact]
    public void HoldsBackAPossibleStopPrefixAndReleasesItWhenItIsNot()
    {
        var matcher = new StopMatcher(["END"]);
        Assert.Equal(("abc", false), matcher.Append("abcE"));
        Assert.Equal(("EX", false), matcher.Append("X"));
        Assert.Equal("", matcher.Flush());
        Assert.Equal("abcEX", matcher.Text);
    }

    [Fact]
    public void FindsAStopSpanningPieces()
    {
        var matcher = new StopMatcher(["<|im_end|>"]);
        Assert.Equal(("hi", false), matcher.Append("hi<|im"));
        Assert.Equal(("", true), matcher.Append("_end|>more"));
        Assert.Equal("hi", matcher.Text);
        Assert.Equal("", matcher.Flush());
    }

    [Fact]
    public void EarliestOfSeveralStopsWins()
    {
        var matcher = new StopMatcher(["bb", "a"]);
        Assert.Equal(("x", true), matcher.Append("xabb"));
        Assert.Equal("x", matcher.Text);
    }

    [Fact]
    public void WithoutStopsEverythingIsEmittedAtOnce()
    {
        var matcher = new StopMatcher([]);
        Assert.Equal(("piece", false), matcher.Append("piece"));
    }
}
