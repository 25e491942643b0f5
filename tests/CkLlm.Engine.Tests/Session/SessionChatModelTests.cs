using CkLlm.Engine.Inference;
using CkLlm.Engine.Session;
using CkLlm.Engine.Tests.Rag;

namespace CkLlm.Engine.Tests.Session;

/// <summary>The session holds any <see cref="IChatModel"/> backend, not only llama.cpp models.</summary>
public class SessionChatModelTests
{
    [Fact]
    public void ASessionServesAndFreesAModelOfAnotherBackend()
    {
        using var session = new CkSession();
        var fake = new FakeGenerator(2048, "Hello there.");
        session.AddModel(fake);
        Assert.Same(fake, session.GetModel("FAKE"));
        Assert.Same(fake, session.CurrentModel);

        var result = session.GetModel().Complete(new CompletionRequest { Prompt = "Hi" });
        Assert.Equal("Hello there.", result.Text);

        Assert.True(session.RemoveModel(fake));
        Assert.True(fake.IsDisposed);
        Assert.Null(session.CurrentModel);
        Assert.Throws<ModelNotLoadedException>(() => session.GetModel());
    }

    [Fact]
    public void ReplacingAModelOfTheSameNameFreesTheOldOneAndKeepsLoadOrder()
    {
        using var session = new CkSession();
        var first = new FakeGenerator(2048);
        var other = new FakeGenerator(1024, name: "other");
        var second = new FakeGenerator(4096);
        session.AddModel(first);
        session.AddModel(other);
        session.AddModel(second);
        Assert.True(first.IsDisposed);
        Assert.Equal(["other", "fake"], session.Models.Select(m => m.Name));
        Assert.Equal(4096, session.GetModel("fake").ContextSize);
    }

    [Fact]
    public void DisposingTheSessionDisposesEveryBackend()
    {
        var session = new CkSession();
        var fake = new FakeGenerator(2048);
        session.AddModel(fake);
        session.Dispose();
        Assert.True(fake.IsDisposed);
    }
}
