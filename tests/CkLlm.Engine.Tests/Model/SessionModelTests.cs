using CkLlm.Engine.Model;
using CkLlm.Engine.Session;

namespace CkLlm.Engine.Tests.Model;

public class SessionModelTests(TestModels models) : IClassFixture<TestModels>
{
    private static readonly ModelLoadOptions Small = new() { ContextSize = 256, Threads = 1 };

    [Fact]
    public void EmptySessionSaysToImportAModel()
    {
        using var session = new CkSession();
        Assert.Null(session.CurrentModel);
        var error = Assert.Throws<ModelNotLoadedException>(() => session.GetModel());
        Assert.Equal("No model is loaded. Run Import-CkModel first.", error.Message);
    }

    [Fact]
    public void ImportRegistersSeveralModelsAndTheLastIsCurrent()
    {
        using var session = new CkSession();
        var first = session.ImportModel(models.Plain, Small with { Name = "first" });
        var second = session.ImportModel(models.WithTemplate, Small with { Name = "second" });
        Assert.Equal(["first", "second"], session.Models.Select(m => m.Name));
        Assert.Same(second, session.CurrentModel);
        Assert.Same(first, session.GetModel("FIRST"));
        session.SetCurrentModel("first");
        Assert.Same(first, session.GetModel());
        Assert.Throws<ModelNotLoadedException>(() => session.GetModel("third"));
    }

    [Fact]
    public void RemoveFreesTheModelAndMovesCurrent()
    {
        using var session = new CkSession();
        var first = session.ImportModel(models.Plain, Small with { Name = "first" });
        var second = session.ImportModel(models.Plain, Small with { Name = "second" });
        Assert.True(session.RemoveModel("second"));
        Assert.True(second.NativeHandleClosed);
        Assert.False(first.NativeHandleClosed);
        Assert.Same(first, session.CurrentModel);
        Assert.False(session.RemoveModel("second"));
        Assert.True(session.RemoveModel("first"));
        Assert.Null(session.CurrentModel);
        Assert.Empty(session.Models);
    }

    [Fact]
    public void ImportingTheSameNameReplacesAndFreesTheOldModel()
    {
        using var session = new CkSession();
        var old = session.ImportModel(models.Plain, Small with { Name = "m" });
        var replacement = session.ImportModel(models.Plain, Small with { Name = "m" });
        Assert.True(old.NativeHandleClosed);
        Assert.Same(replacement, session.GetModel("m"));
        Assert.Single(session.Models);
    }

    [Fact]
    public void DisposingTheSessionFreesEveryModel()
    {
        var session = new CkSession();
        var a = session.ImportModel(models.Plain, Small with { Name = "a" });
        var b = session.ImportModel(models.Plain, Small with { Name = "b" });
        session.Dispose();
        Assert.True(a.NativeHandleClosed);
        Assert.True(b.NativeHandleClosed);
    }

    [Fact]
    public void FailedImportLeavesTheSessionUnchanged()
    {
        using var session = new CkSession();
        var kept = session.ImportModel(models.Plain, Small with { Name = "kept" });
        Assert.ThrowsAny<Exception>(() => session.ImportModel(Path.Combine(models.Directory, "nope.gguf"), Small));
        Assert.Same(kept, session.CurrentModel);
        Assert.Single(session.Models);
    }
}
