namespace CrashingHost;

// Runs in order (one class, one collection): two pass, the third kills the host the way a native abort would, and the
// fourth never runs. A correct accounting reports this run as failed, never as "2 passed, 0 failed".
[TestCaseOrderer("CrashingHost.ByName", "CrashingHost")]
public class CrashingTests
{
    [Fact] public void A_Passes() => Assert.Equal(4, 2 + 2);
    [Fact] public void B_Passes() => Assert.Equal("ab", "a" + "b");
    [Fact] public void C_KillsTheHost() => Environment.FailFast("deliberate crash: the test task must report this run as failed");
    [Fact] public void D_NeverRuns() => Assert.True(true);
}

public sealed class ByName : Xunit.Sdk.ITestCaseOrderer
{
    public IEnumerable<TTestCase> OrderTestCases<TTestCase>(IEnumerable<TTestCase> testCases) where TTestCase : Xunit.Abstractions.ITestCase =>
        testCases.OrderBy(t => t.TestMethod.Method.Name, StringComparer.Ordinal);
}
