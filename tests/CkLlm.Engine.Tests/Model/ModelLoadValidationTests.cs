using CkLlm.Engine.Model;
using CkLlm.Engine.Model.Gguf;

namespace CkLlm.Engine.Tests.Model;

/// <summary>Loading goes through the managed validator first: its reason, not llama.cpp's, reaches the user.</summary>
public class ModelLoadValidationTests(TestModels models) : IClassFixture<TestModels>
{
    [Theory]
    [InlineData("text", "this is plain text, not a GGUF model")]
    [InlineData("zeros", null)]
    public void AFileTheValidatorRejectsNeverReachesLlamaCpp(string name, string? content)
    {
        var bad = Path.Combine(models.Directory, $"rejected-{name}.gguf");
        if (content is null) File.WriteAllBytes(bad, new byte[4096]); else File.WriteAllText(bad, content);
        var expected = Assert.Throws<GgufFormatException>(() => GgufValidator.Validate(bad));
        var error = Assert.Throws<GgufFormatException>(() => LoadedModel.Load(bad));
        Assert.Equal(expected.Reason, error.Reason);
        Assert.Equal(bad, error.Path);
    }
}
