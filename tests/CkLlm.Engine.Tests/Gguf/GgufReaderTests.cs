using CkLlm.Engine.Model.Generation;
using CkLlm.Engine.Model.Gguf;

namespace CkLlm.Engine.Tests.Gguf;

public class GgufReaderTests : IClassFixture<TinyModelFixture>
{
    private readonly TinyModelFixture _tiny;

    public GgufReaderTests(TinyModelFixture tiny) => _tiny = tiny;

    [Fact]
    public void RoundTripsAllThirteenValueTypesAndNestedArrays()
    {
        var values = new (string Key, GgufValue Value)[]
        {
            ("t.u8", new(GgufValueType.UInt8, (byte)200)),
            ("t.i8", new(GgufValueType.Int8, (sbyte)-100)),
            ("t.u16", new(GgufValueType.UInt16, (ushort)60000)),
            ("t.i16", new(GgufValueType.Int16, (short)-30000)),
            ("t.u32", GgufValue.From(4000000000u)),
            ("t.i32", GgufValue.From(-2000000000)),
            ("t.f32", GgufValue.From(1.5f)),
            ("t.bool", GgufValue.From(true)),
            ("t.string", GgufValue.From("héllo ▁wörld")),
            ("t.u64", GgufValue.From(ulong.MaxValue)),
            ("t.i64", new(GgufValueType.Int64, long.MinValue)),
            ("t.f64", new(GgufValueType.Float64, Math.PI)),
            ("t.strings", GgufValue.From(GgufArray.Of("a", "", "ccc"))),
            ("t.floats", GgufValue.From(GgufArray.Of(1f, -2f))),
            ("t.longs", GgufValue.From(new GgufArray(GgufValueType.Int64, new long[] { 1, long.MaxValue }))),
            ("t.bools", GgufValue.From(new GgufArray(GgufValueType.Bool, new[] { true, false }))),
            ("t.nested", GgufValue.From(new GgufArray(GgufValueType.Array, new[] { GgufArray.Of(1, 2), GgufArray.Of(3) }))),
        };
        var writer = new GgufWriter();
        foreach (var (key, value) in values) writer.Add(key, value);
        writer.AddTensor("a", [64, 2], new float[128]);
        writer.AddTensor("b", [3], new float[3]);
        var path = _tiny.NewPath("roundtrip");
        writer.WriteTo(path);

        var file = GgufReader.Read(path);
        Assert.Equal(3u, file.Version);
        Assert.Equal(values.Select(v => v.Key), file.Metadata.Select(m => m.Key));
        foreach (var (key, value) in values)
        {
            Assert.True(file.TryGetValue(key, out var read));
            Assert.Equal(value.Type, read.Type);
            if (value.Value is GgufArray expected) AssertArrayEqual(expected, (GgufArray)read.Value);
            else Assert.Equal(value.Value, read.Value);
        }
        Assert.Equal(4000000000u, file.GetUInt32("t.u32"));
        Assert.Equal("héllo ▁wörld", file.GetString("t.string"));
        Assert.Equal(new[] { "a", "", "ccc" }, file.GetArray<string>("t.strings"));
        Assert.Equal(2, file.Tensors.Count);
        Assert.Equal(new GgufTensorInfo("a", [64, 2], GgmlType.F32, 0, 512).ToString(), file.Tensors[0].ToString());
        Assert.Equal(512, file.Tensors[1].Offset); // 512 bytes is already aligned to 32
        Assert.Equal(12, file.Tensors[1].ByteSize);
        Assert.Equal(0, file.DataOffset % 32);
    }

    private static void AssertArrayEqual(GgufArray expected, GgufArray actual)
    {
        Assert.Equal(expected.ElementType, actual.ElementType);
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            if (expected.Items.GetValue(i) is GgufArray inner) AssertArrayEqual(inner, (GgufArray)actual.Items.GetValue(i)!);
            else Assert.Equal(expected.Items.GetValue(i), actual.Items.GetValue(i));
        }
    }

    [Fact]
    public void ReadsTheGeneratedTinyModelsTensorTable()
    {
        var file = _tiny.File_;
        var p = ModelPreset.Tiny;
        Assert.Equal("llama", file.GetString("general.architecture"));
        Assert.Equal(p.VocabularySize, file.GetArray<string>("tokenizer.ggml.tokens").Length);
        Assert.Equal(3 + 9 * p.BlockCount, file.Tensors.Count);
        var embd = file.FindTensor("token_embd.weight")!;
        Assert.Equal(new long[] { p.EmbeddingLength, p.VocabularySize }, embd.Shape);
        Assert.Equal(GgmlType.F32, embd.Type);
        Assert.Equal(4L * p.EmbeddingLength * p.VocabularySize, embd.ByteSize);
        Assert.Equal(p.ParameterCount, file.Tensors.Sum(t => t.ElementCount));
        var last = file.Tensors[^1];
        Assert.Equal(file.FileSize, file.DataOffset + last.Offset + last.ByteSize);
    }

    [Fact]
    public void TypedAccessorsNameTheKeyWhenMissingOrOfAnotherType()
    {
        var missing = Assert.Throws<GgufFormatException>(() => _tiny.File_.GetString("no.such.key"));
        Assert.Contains("no.such.key", missing.Reason);
        var wrongType = Assert.Throws<GgufFormatException>(() => _tiny.File_.GetString("llama.block_count"));
        Assert.Contains("UInt32", wrongType.Reason);
        Assert.Null(_tiny.File_.GetStringOrNull("llama.block_count"));
    }

    [Fact]
    public void MissingFileThrowsFileNotFound()
    {
        Assert.Throws<FileNotFoundException>(() => GgufReader.Read(Path.Combine(_tiny.Directory, "absent.gguf")));
        Assert.Throws<FileNotFoundException>(() => GgufValidator.Validate(Path.Combine(_tiny.Directory, "absent.gguf")));
    }
}
