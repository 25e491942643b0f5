using CkLlm.Engine.Inference;
using CkLlm.Engine.Model;
using CkLlm.Engine.Model.Gguf;
using Xunit.Abstractions;

namespace CkLlm.Engine.Tests.Gguf;

/// <summary>
/// Corrupt copies of a generated Tiny model: nothing may get past the validator that llama.cpp would then choke on.
/// A crash inside llama.cpp would kill the test host, so "every accepted copy loads" is checked by actually loading.
/// </summary>
public class GgufFuzzTests : IClassFixture<TinyModelFixture>
{
    // CKLLM_GGUF_FUZZ_SCALE=N multiplies the copies for a longer local soak; CI runs the default.
    private static readonly int Scale = int.TryParse(Environment.GetEnvironmentVariable("CKLLM_GGUF_FUZZ_SCALE"), out var s) && s > 0 ? s : 1;
    private static readonly int TruncatedCopies = 160 * Scale;
    private static readonly int StructuralFlips = 240 * Scale;
    private static readonly int DataFlips = 40 * Scale;
    private static readonly int RandomSeed = Scale == 1 ? 4711 : Environment.TickCount;

    private readonly TinyModelFixture _tiny;
    private readonly ITestOutputHelper _output;

    public GgufFuzzTests(TinyModelFixture tiny, ITestOutputHelper output) { _tiny = tiny; _output = output; }

    [Fact]
    public void EveryTruncatedCopyIsRejected()
    {
        var random = new Random(2024);
        long structureEnd = _tiny.File_.DataOffset;
        // Half the cuts inside the header/metadata/tensor table, half inside the tensor data; plus the edges.
        var lengths = new List<int> { 0, 1, 3, 4, 8, 23, 24, (int)structureEnd - 1, (int)structureEnd, _tiny.Bytes.Length - 1 };
        while (lengths.Count < TruncatedCopies)
            lengths.Add(lengths.Count % 2 == 0 ? random.Next((int)structureEnd) : random.Next((int)structureEnd, _tiny.Bytes.Length));
        foreach (var length in lengths)
        {
            var path = _tiny.WriteBytes($"cut{length}", _tiny.Bytes[..length]);
            var e = Assert.Throws<GgufFormatException>(() => GgufValidator.Validate(path));
            Assert.False(string.IsNullOrWhiteSpace(e.Reason));
            File.Delete(path);
        }
    }

    [Fact]
    public void EveryStructuralBitFlipIsRejectedWithAReasonOrLoadsAndGenerates()
    {
        var random = new Random(RandomSeed);
        _output.WriteLine($"seed {RandomSeed}");
        int structureEnd = (int)_tiny.File_.DataOffset;
        int rejected = 0, loaded = 0;
        for (int i = 0; i < StructuralFlips; i++)
        {
            var bytes = (byte[])_tiny.Bytes.Clone();
            // Bias a third of the flips to the fixed header and the tensor table, where single bits matter most.
            int position = (i % 3) switch
            {
                0 => random.Next(Math.Min(64, structureEnd)),
                1 => random.Next(TensorTableStart(), structureEnd),
                _ => random.Next(structureEnd),
            };
            bytes[position] ^= (byte)(1 << random.Next(8));
            var path = _tiny.WriteBytes($"flip{i}-{position}", bytes);
            var outcome = LoadOrReject(path);
            if (outcome is GgufFormatException e)
            {
                // Rejected through the model-loading path, by the validator, with a reason a user can act on.
                Assert.Equal(path, e.Path);
                Assert.False(string.IsNullOrWhiteSpace(e.Reason), $"flip {i} at byte {position}: empty reason");
                Assert.DoesNotContain("llama.cpp could not load", e.Reason);
                Assert.Equal(e.Reason, Assert.Throws<GgufFormatException>(() => GgufValidator.Validate(path)).Reason);
                rejected++;
            }
            else
            {
                if (Environment.GetEnvironmentVariable("CKLLM_GGUF_FUZZ_KEEP") is { Length: > 0 } keep) File.Copy(path, keep, overwrite: true);
                Assert.Null(outcome);
                loaded++;
            }
            File.Delete(path);
        }
        _output.WriteLine($"{StructuralFlips} structural flips: {rejected} rejected with a reason, {loaded} loaded and generated a token.");
        Assert.True(rejected > 0, "no flip was detected at all");
    }

    /// <summary>
    /// Loads <paramref name="path"/> as a user would and proves the model usable (tokenizes, decodes and samples one
    /// token); returns the rejection instead when loading refuses the file. A native abort kills the test host, which
    /// the Test task reports as a failed run.
    /// </summary>
    private static GgufFormatException? LoadOrReject(string path)
    {
        LoadedModel model;
        try { model = LoadedModel.Load(path, new ModelLoadOptions { ContextSize = 256, Threads = 1 }); }
        catch (GgufFormatException e) { return e; }
        using (model)
        {
            Assert.NotEmpty(model.Tokenize("Once upon a time"));
            var result = CompletionEngine.Complete(model, new CompletionRequest { Prompt = "Once upon a time", Temperature = 0, MaxTokens = 1 });
            Assert.True(result.PromptTokens > 0);
            Assert.True(result.CompletionTokens == 1 || result.FinishReason == FinishReason.Stop, $"{path}: no token decoded ({result.FinishReason})");
        }
        return null;
    }

    /// <summary>GGUF has no checksum: a flipped bit in tensor data is a different but perfectly valid model.</summary>
    [Fact]
    public void BitFlipsInTensorDataStillGiveAValidFile()
    {
        var random = new Random(99);
        int structureEnd = (int)_tiny.File_.DataOffset;
        var expected = GgufValidator.Validate(_tiny.ModelPath);
        for (int i = 0; i < DataFlips; i++)
        {
            var bytes = (byte[])_tiny.Bytes.Clone();
            bytes[random.Next(structureEnd, bytes.Length)] ^= (byte)(1 << random.Next(8));
            var path = _tiny.WriteBytes($"dataflip{i}", bytes);
            Assert.Equal(expected with { Path = path }, GgufValidator.Validate(path));
            File.Delete(path);
        }
    }

    private int TensorTableStart()
    {
        // The table starts right after the metadata: find it as the first tensor name's length field.
        var name = System.Text.Encoding.UTF8.GetBytes(_tiny.File_.Tensors[0].Name);
        var span = _tiny.Bytes.AsSpan(0, (int)_tiny.File_.DataOffset);
        int index = span.LastIndexOf(name);
        return Math.Max(0, index - 8);
    }
}
