using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Session;
using CkLlm.Engine.Tests.Knowledge;

namespace CkLlm.Engine.Tests.Session;

/// <summary>The session's knowledge side: which instance a request gets, and that no instance is closed under a user.</summary>
public class SessionKnowledgeTests
{
    private static string LongText(string topic) =>
        string.Join(' ', Enumerable.Range(1, 400).Select(i => $"{topic} sentence {i} talks about rivers and stones."));

    [Fact]
    public void DefaultOptionsAfterANonDefaultOpenChunkWithTheDefaults()
    {
        using var dir = new KnowledgeTestDirectory();
        using var session = new CkSession();
        var small = session.OpenKnowledgeBase(dir.Kb, new KnowledgeBaseOptions { ChunkSize = 48, ChunkOverlap = 8 });
        var smallChunks = small.AddText(LongText("alpha"), "alpha").Chunks;

        var defaults = session.OpenKnowledgeBase(dir.Kb, new KnowledgeBaseOptions());
        var defaultChunks = defaults.AddText(LongText("omega"), "omega").Chunks;

        Assert.True(defaultChunks * 2 < smallChunks, $"default options gave {defaultChunks} chunks, ChunkSize 48 gave {smallChunks}");
    }

    [Fact]
    public void NoOptionsTakeTheOpenInstanceWhateverItWasOpenedWith()
    {
        using var dir = new KnowledgeTestDirectory();
        using var session = new CkSession();
        var opened = session.OpenKnowledgeBase(dir.Kb, new KnowledgeBaseOptions { ChunkSize = 48, ChunkOverlap = 8 });
        Assert.Same(opened, session.OpenKnowledgeBase(dir.Kb));
        Assert.Same(opened, session.OpenKnowledgeBase(null));
        Assert.Equal(Path.GetFullPath(dir.Kb), session.CurrentKnowledgeBase);
    }

    [Fact]
    public void EqualOptionsTakeTheOpenInstance()
    {
        using var dir = new KnowledgeTestDirectory();
        using var session = new CkSession();
        var opened = session.OpenKnowledgeBase(dir.Kb, new KnowledgeBaseOptions { ChunkSize = 64 });
        Assert.Same(opened, session.OpenKnowledgeBase(dir.Kb, new KnowledgeBaseOptions { ChunkSize = 64 }));
        Assert.NotSame(opened, session.OpenKnowledgeBase(dir.Kb, new KnowledgeBaseOptions { ChunkSize = 65 }));
    }

    [Fact]
    public void ALeasedKnowledgeBaseClosedElsewhereStaysUsableUntilTheLeaseEnds()
    {
        using var dir = new KnowledgeTestDirectory();
        using var session = new CkSession();
        var lease = session.LeaseKnowledgeBase(dir.Kb);
        lease.KnowledgeBase.AddText("Granite is an igneous rock.", "rocks");

        Assert.True(session.CloseKnowledgeBase(dir.Kb));
        Assert.Null(session.CurrentKnowledgeBase);
        var hits = lease.KnowledgeBase.Search("granite", new SearchOptions { Mode = SearchMode.Keyword });
        Assert.Single(hits);

        lease.Dispose();
        Assert.Throws<ObjectDisposedException>(() => lease.KnowledgeBase.Search("granite"));
    }

    [Fact]
    public void AnUnleasedKnowledgeBaseIsDisposedWhenClosed()
    {
        using var dir = new KnowledgeTestDirectory();
        using var session = new CkSession();
        var kb = session.OpenKnowledgeBase(dir.Kb);
        Assert.True(session.CloseKnowledgeBase(dir.Kb));
        Assert.False(session.CloseKnowledgeBase(dir.Kb));
        Assert.Throws<ObjectDisposedException>(() => kb.Search("anything"));
    }

    [Fact]
    public void DisposingTheSessionWaitsForLeasesAndRefusesNewOpens()
    {
        using var dir = new KnowledgeTestDirectory();
        var session = new CkSession();
        using var lease = session.LeaseKnowledgeBase(dir.Kb);
        session.Dispose();
        Assert.Empty(lease.KnowledgeBase.Search("still open", new SearchOptions { Mode = SearchMode.Keyword }));
        Assert.Throws<ObjectDisposedException>(() => session.OpenKnowledgeBase(dir.Kb));
    }

    [Fact]
    public async Task SearchesUnderLeasesSurviveReopeningFromAnotherThread()
    {
        using var dir = new KnowledgeTestDirectory();
        using var session = new CkSession();
        session.OpenKnowledgeBase(dir.Kb).AddText("Basalt forms from lava that cools quickly.", "basalt");
        using var stop = new CancellationTokenSource();
        var searches = 0;
        var searcher = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var lease = session.LeaseKnowledgeBase(dir.Kb);
                Assert.Single(lease.KnowledgeBase.Search("basalt lava", new SearchOptions { Mode = SearchMode.Keyword }));
                Interlocked.Increment(ref searches);
            }
        });
        // Another "runspace" keeps reopening it with other options, which retires the instance the searcher holds.
        for (var i = 0; i < 20; i++)
            session.OpenKnowledgeBase(dir.Kb, new KnowledgeBaseOptions { ChunkSize = 100 + (i % 2) });
        while (Volatile.Read(ref searches) < 5 && !searcher.IsCompleted) await Task.Delay(10);
        await stop.CancelAsync();
        await searcher;
        Assert.True(searches >= 5);
    }
}
