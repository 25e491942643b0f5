using CkLlm.Engine.Model.Generation;
using CkLlm.Engine.Model.Gguf;
using LLama;
using LLama.Common;
using Xunit.Abstractions;

namespace CkLlm.Engine.Tests.Gguf;

public sealed class Qwen2ModelFixture() : TinyModelFixture(new ModelGenerationOptions { Architecture = ModelArchitecture.Qwen2, Seed = 1 });

public sealed class Phi3ModelFixture() : TinyModelFixture(new ModelGenerationOptions { Architecture = ModelArchitecture.Phi3, Seed = 1 });

public sealed class Gemma2ModelFixture() : TinyModelFixture(new ModelGenerationOptions { Architecture = ModelArchitecture.Gemma2, Seed = 1 });

public sealed class Llama3ModelFixture() : TinyModelFixture(new ModelGenerationOptions { Architecture = ModelArchitecture.Llama3, Seed = 1 });

/// <summary>
/// Per-architecture tensor sets: a malformed Qwen2, Phi-3, Gemma-2 or Llama 3 file is refused in managed code with the
/// tensor's name, and random flips in the header and tensor table are rejected or load in llama.cpp.
/// </summary>
public abstract class ShapeValidatorTests(TinyModelFixture model, ITestOutputHelper output)
{
    private const int StructuralFlips = 24;

    protected void AssertRejected(string name, string reasonPart, Action<List<(string Name, long[] Shape)>> editTensors, Action<List<GgufMetadataEntry>>? editMetadata = null)
    {
        var path = model.Rewrite(name, editMetadata, editTensors);
        var e = Assert.Throws<GgufFormatException>(() => GgufValidator.Validate(path));
        Assert.Contains(reasonPart, e.Reason);
        File.Delete(path);
    }

    protected static void Remove(List<(string Name, long[] Shape)> tensors, string name) =>
        Assert.Equal(1, tensors.RemoveAll(t => t.Name == name));

    protected static void Reshape(List<(string Name, long[] Shape)> tensors, string name, long[] shape)
    {
        int i = tensors.FindIndex(t => t.Name == name);
        Assert.True(i >= 0, name);
        tensors[i] = (name, shape);
    }

    [Fact]
    public void TheGeneratedFileValidates() => GgufValidator.Validate(model.ModelPath);

    [Fact]
    public void AnExtraBlockTensorIsRejected() =>
        AssertRejected("extra", "blk.1.attn_extra.weight", t => t.Add(("blk.1.attn_extra.weight", [64])));

    [Fact]
    public void AMissingFeedForwardDownIsRejected() =>
        AssertRejected("no-down", "blk.1.ffn_down.weight is missing", t => Remove(t, "blk.1.ffn_down.weight"));

    [Fact]
    public void StructuralFlipsAreRejectedOrLoadInLlamaCpp()
    {
        var random = new Random(4242);
        int structureEnd = (int)model.File_.DataOffset;
        // The tensor table: from the first tensor name's length field to the data.
        var firstName = System.Text.Encoding.UTF8.GetBytes(model.File_.Tensors[0].Name);
        int tableStart = Math.Max(0, model.Bytes.AsSpan(0, structureEnd).LastIndexOf(firstName) - 8);
        int rejected = 0, loaded = 0;
        for (int i = 0; i < StructuralFlips; i++)
        {
            var bytes = (byte[])model.Bytes.Clone();
            int position = i % 4 == 0 ? random.Next(Math.Min(64, structureEnd)) : random.Next(tableStart, structureEnd);
            bytes[position] ^= (byte)(1 << random.Next(8));
            var path = model.WriteBytes($"flip{i}", bytes);
            try
            {
                GgufValidator.Validate(path);
            }
            catch (GgufFormatException)
            {
                rejected++;
                File.Delete(path);
                continue;
            }
            using (var weights = LLamaWeights.LoadFromFile(new ModelParams(path) { ContextSize = 256, GpuLayerCount = 0 }))
                Assert.True(weights.Vocab.Count > 0);
            loaded++;
            File.Delete(path);
        }
        output.WriteLine($"{StructuralFlips} flips: {rejected} rejected, {loaded} loaded by llama.cpp");
        Assert.True(rejected > 0, "no flip was detected at all");
    }
}

public class Qwen2ValidatorTests(Qwen2ModelFixture model, ITestOutputHelper output) : ShapeValidatorTests(model, output), IClassFixture<Qwen2ModelFixture>
{
    [Fact]
    public void AMisshapenBiasIsRejected() =>
        AssertRejected("bias", "blk.0.attn_k.bias has shape", t => Reshape(t, "blk.0.attn_k.bias", [64]));

    [Fact]
    public void AMissingAttentionProjectionIsRejected() =>
        AssertRejected("no-q", "blk.0.attn_q.weight is missing", t => Remove(t, "blk.0.attn_q.weight"));
}

public class Phi3ValidatorTests(Phi3ModelFixture model, ITestOutputHelper output) : ShapeValidatorTests(model, output), IClassFixture<Phi3ModelFixture>
{
    [Fact]
    public void AFusedQkvOfTheWrongWidthIsRejected() =>
        AssertRejected("qkv", "blk.0.attn_qkv.weight has shape", t => Reshape(t, "blk.0.attn_qkv.weight", [64, 192]));

    [Fact]
    public void ABlockWithoutAnyAttentionProjectionIsRejected() =>
        AssertRejected("no-qkv", "needs either attn_qkv.weight", t => Remove(t, "blk.1.attn_qkv.weight"));

    [Fact]
    public void AnUnfusedGateUpIsRejected() =>
        AssertRejected("gate-up", "blk.0.ffn_up.weight has shape", t => Reshape(t, "blk.0.ffn_up.weight", [64, ModelPreset.Tiny.FeedForwardLength]));
}

public class Gemma2ValidatorTests(Gemma2ModelFixture model, ITestOutputHelper output) : ShapeValidatorTests(model, output), IClassFixture<Gemma2ModelFixture>
{
    [Fact]
    public void AMissingPostNormIsRejected() =>
        AssertRejected("no-post", "blk.1.post_ffw_norm.weight is missing", t => Remove(t, "blk.1.post_ffw_norm.weight"));

    [Fact]
    public void AMissingRmsEpsilonIsRejected() =>
        AssertRejected("no-eps", "gemma2.attention.layer_norm_rms_epsilon", _ => { },
            m => Assert.Equal(1, m.RemoveAll(e => e.Key == "gemma2.attention.layer_norm_rms_epsilon")));
}

public class Llama3ValidatorTests(Llama3ModelFixture model, ITestOutputHelper output) : ShapeValidatorTests(model, output), IClassFixture<Llama3ModelFixture>
{
    [Fact]
    public void RopeFrequencyFactorsOfTheWrongLengthAreRejected() =>
        AssertRejected("rope", "rope_freqs.weight has shape", t => Reshape(t, "rope_freqs.weight", [ModelPreset.Tiny.HeadDimension]));

    [Fact]
    public void AMisshapenTiedEmbeddingIsRejected() =>
        AssertRejected("embd", "token_embd.weight has shape", t => Reshape(t, "token_embd.weight", [32, ByteLevelBpeVocabulary.Cl100kMergeableCount + 5]));
}
