using CkLlm.Engine.Model;
using CkLlm.Engine.Model.Generation;
using CkLlm.Engine.Model.Gguf;

namespace CkLlm.Engine.Tests.Model;

public class LoadedModelTests(TestModels models) : IClassFixture<TestModels>
{
    [Fact]
    public void LoadReportsWhatTheFileDeclares()
    {
        using var model = LoadedModel.Load(models.Plain, new ModelLoadOptions { ContextSize = 256, Threads = 1 });
        Assert.Equal("tiny", model.Name);
        Assert.Equal(models.Plain, model.Path);
        Assert.Equal("llama", model.Architecture);
        Assert.Equal(ModelPreset.Tiny.VocabularySize, model.VocabularySize);
        Assert.Equal(ModelPreset.Tiny.ContextLength, model.ContextLength);
        Assert.Equal(ModelPreset.Tiny.ParameterCount, model.ParameterCount);
        Assert.Equal(new FileInfo(models.Plain).Length, model.FileSize);
        Assert.False(model.HasChatTemplate);
        Assert.Equal(1, model.Threads);
        Assert.True(model.ContextSize >= 256);
        Assert.True(model.LoadTime > TimeSpan.Zero);
    }

    [Fact]
    public void NameOptionAndChatTemplateAreKept()
    {
        using var model = LoadedModel.Load(models.WithTemplate, new ModelLoadOptions { Name = "chat", ContextSize = 256 });
        Assert.Equal("chat", model.Name);
        Assert.True(model.HasChatTemplate);
        Assert.Equal(TestModels.GemmaTemplate, model.ChatTemplate);
    }

    [Fact]
    public void TokenizeCountAndDetokenizeRoundTrip()
    {
        using var model = LoadedModel.Load(models.Plain, new ModelLoadOptions { ContextSize = 256 });
        const string text = "The quick brown fox";
        var tokens = model.Tokenize(text);
        Assert.True(tokens.Length is > 1 and < 20);
        Assert.Equal(tokens.Length, model.CountTokens(text));
        Assert.Equal(tokens.Length + 1, model.CountTokens(text, addBos: true));
        Assert.Equal(text, model.Detokenize(tokens).Trim());
    }

    [Fact]
    public void MissingFileThrowsFileNotFound()
    {
        var missing = Path.Combine(models.Directory, "missing.gguf");
        Assert.Throws<FileNotFoundException>(() => LoadedModel.Load(missing));
    }

    [Fact]
    public void NonGgufFileThrowsFormatExceptionNamingTheFile()
    {
        var bad = Path.Combine(models.Directory, "not-a-model.gguf");
        File.WriteAllText(bad, "this is plain text, not a GGUF model");
        var error = Assert.Throws<GgufFormatException>(() => LoadedModel.Load(bad));
        Assert.Equal(bad, error.Path);
        Assert.Contains("not-a-model.gguf", error.Message);
    }

    [Fact]
    public void MissingAdapterThrowsBeforeLoading()
    {
        var options = new ModelLoadOptions { Adapters = [Path.Combine(models.Directory, "no-adapter.gguf")] };
        Assert.Throws<FileNotFoundException>(() => LoadedModel.Load(models.Plain, options));
    }

    [Fact]
    public void DisposeReleasesTheNativeHandle()
    {
        var model = LoadedModel.Load(models.Plain, new ModelLoadOptions { ContextSize = 256 });
        Assert.False(model.NativeHandleClosed);
        model.Dispose();
        Assert.True(model.IsDisposed);
        Assert.True(model.NativeHandleClosed);
        Assert.Throws<ObjectDisposedException>(() => model.Tokenize("x"));
    }

    [Fact]
    public void NativeLibraryDirectoryIsWhereLibllamaWasLoadedFrom()
    {
        using var model = LoadedModel.Load(models.Plain, new ModelLoadOptions { ContextSize = 256 });
        var directory = NativeBackend.NativeLibraryDirectory;
        Assert.NotNull(directory);
        Assert.True(File.Exists(Path.Combine(directory!, "libllama.so")));
        Assert.True(File.Exists(Path.Combine(directory!, "libggml.so")));
    }

    [Fact]
    public void NativeLogIsCapturedNotPrinted()
    {
        NativeBackend.DrainLog();
        using var model = LoadedModel.Load(models.Plain, new ModelLoadOptions { ContextSize = 256 });
        var lines = NativeBackend.DrainLog();
        Assert.Contains(lines, l => l.Text.Contains("llama", StringComparison.OrdinalIgnoreCase));
    }
}
