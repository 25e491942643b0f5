using CkLlm.Engine.Knowledge.Ingestion;
using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Model.Generation;
using CkLlm.Engine.Training;

namespace CkLlm.Engine.Tests.Training;

/// <summary>Issue 9 item 7: the output never replaces the base model or an existing file unasked, binary input is
/// refused, the job spec is private, and data too small to train on is refused before native work.</summary>
[Collection("Training")]
public class FineTuneSafetyTests(TrainingFixture fixture)
{
    private FineTuneOptions Options(string output) => new()
    {
        ModelPath = fixture.TinyModel, OutputPath = output, Texts = [TrainingFixture.Facts],
        Epochs = 1, ContextLength = 32, MeasurePerplexity = false,
    };

    [Fact]
    public void OutputThatIsTheBaseModelOrALinkToItIsRefusedAndTheBaseIsUntouched()
    {
        var before = File.ReadAllBytes(fixture.TinyModel);
        var link = fixture.NewPath("link-to-base.gguf");
        File.CreateSymbolicLink(link, fixture.TinyModel);

        foreach (var output in new[] { fixture.TinyModel, link })
        {
            var e = Assert.Throws<ArgumentException>(() => FineTuner.Run(Options(output) with { Overwrite = true }));
            Assert.Equal(nameof(FineTuneOptions.OutputPath), e.ParamName);
            Assert.Contains("base model", e.Message);
        }
        Assert.Equal(before, File.ReadAllBytes(fixture.TinyModel));
    }

    [Fact]
    public void ExistingOutputIsKeptUnlessOverwriteIsGiven()
    {
        var output = fixture.NewPath("existing.gguf");
        File.WriteAllText(output, "precious");
        var e = Assert.Throws<FineTuneOutputExistsException>(() => FineTuner.Run(Options(output)));
        Assert.Equal(output, e.Path);
        Assert.Equal("precious", File.ReadAllText(output));

        var result = FineTuner.Run(Options(output) with { Overwrite = true });
        Assert.Equal(output, result.AdapterPath);
        Assert.Equal("GGUF"u8.ToArray(), File.ReadAllBytes(output)[..4]);
    }

    [Fact]
    public void BlankTextIsRefusedBeforeTheModelIsOpened()
    {
        // A garbage model would abort inside llama.cpp if it were opened: the blank text must be refused first.
        var garbage = fixture.NewPath("garbage-model.gguf");
        File.WriteAllBytes(garbage, new byte[4096]);
        var e = Assert.Throws<ArgumentException>(() => FineTuner.Run(Options(fixture.NewPath("blank.gguf")) with { ModelPath = garbage, Texts = [" \n\t "] }));
        Assert.Equal(nameof(FineTuneOptions.Texts), e.ParamName);
    }

    [Fact]
    public void UnknownQuantizationIsRefusedBeforeTrainingAndAKnownOneWritesThatType()
    {
        // A garbage model would abort inside llama.cpp if it were opened: the name must be refused first.
        var garbage = fixture.NewPath("garbage-for-quantization.gguf");
        File.WriteAllBytes(garbage, new byte[4096]);
        var e = Assert.Throws<ArgumentException>(() => FineTuner.Run(Options(fixture.NewPath("q-bad.gguf")) with
        {
            ModelPath = garbage, Method = FineTuneMethod.Full, Quantization = "Q4_K",
        }));
        Assert.Equal(nameof(FineTuneOptions.Quantization), e.ParamName);
        Assert.Contains("Q4_K_M", e.Message);

        // F16 was refused by LLamaSharp's name lookup (it also matches BF16); the written file must be F16.
        var output = fixture.NewPath("full-f16.gguf");
        FineTuner.Run(Options(output) with { Method = FineTuneMethod.Full, Quantization = "f16" });
        var file = CkLlm.Engine.Model.Gguf.GgufReader.Read(output);
        Assert.Equal((uint)ModelQuantization.FileTypeOf("F16"), file.GetUInt32("general.file_type"));
        Assert.Contains(file.Tensors, t => t.Type == CkLlm.Engine.Model.Gguf.GgmlType.F16);
    }

    [Fact]
    public void RecordsThatLeaveNoResponseTokenInTheWindowAreAClearError()
    {
        var longPrompt = string.Join(' ', Enumerable.Repeat("lighthouse", 80));
        var options = Options(fixture.NewPath("toolong.gguf")) with { Texts = [], Pairs = [new TrainingPair(longPrompt, "Edda Quill.")], ContextLength = 16 };
        var e = Assert.Throws<ArgumentException>(() => FineTuner.Run(options));
        Assert.Contains("too small to form one training window", e.Message);
        Assert.Contains("context length 16", e.Message);
        Assert.False(File.Exists(options.OutputPath));
    }

    [Fact]
    public void TrainingDocumentsRefuseBinaryFilesAndReadMarkdown()
    {
        var binary = fixture.NewPath("image.bin");
        File.WriteAllBytes(binary, [0x89, 0x50, 0x4E, 0x47, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52]);
        var e = Assert.Throws<UnreadableDocumentException>(() => DocumentText.ReadFile(binary));
        Assert.Equal(binary, e.Path);
        Assert.Contains("binary", e.Message);

        var markdown = fixture.NewPath("notes.md");
        File.WriteAllText(markdown, "# Varnholm\n\nThe lighthouse was built in 1743.\n\n## Bakery\n\nTobin Marsh bakes the storm loaf.\n");
        var text = DocumentText.ReadFile(markdown);
        Assert.Contains("The lighthouse was built in 1743.", text);
        Assert.Contains("Tobin Marsh bakes the storm loaf.", text);
    }

    [Fact]
    public void JobSpecIsOwnerOnlyInAPrivateDirectoryAndDeletedWithIt()
    {
        if (OperatingSystem.IsWindows()) return; // Unix file modes; Windows keeps temp files per user
        var options = Options(fixture.NewPath("spec.gguf"));
        var spec = FineTuneJobProtocol.WritePrivateSpec(options);
        var directory = Path.GetDirectoryName(spec)!;
        try
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(spec));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(directory));
            Assert.Equal(TrainingFixture.Facts, FineTuneJobProtocol.ReadSpec(spec).Texts.Single());
        }
        finally
        {
            FineTuneJobProtocol.DeleteSpec(spec);
        }
        Assert.False(File.Exists(spec));
        Assert.False(Directory.Exists(directory));
    }
}
