namespace CkLlm.Engine.Tests;

public class EngineInfoTests
{
    [Fact]
    public void VersionIsSet() => Assert.Equal("0.1.0.0", EngineInfo.Version);
}
