using System.Text;
using CkLlm.Engine.Model.Generation;
using CkLlm.Engine.Model.Gguf;
using static CkLlm.Engine.Tests.Gguf.TinyModelFixture;

namespace CkLlm.Engine.Tests.Gguf;

public class GgufValidatorTests : IClassFixture<TinyModelFixture>
{
    private readonly TinyModelFixture _tiny;

    public GgufValidatorTests(TinyModelFixture tiny) => _tiny = tiny;

    private string Reject(string path)
    {
        var e = Assert.Throws<GgufFormatException>(() => GgufValidator.Validate(path));
        Assert.Equal(path, e.Path);
        Assert.Contains(e.Reason, e.Message);
        return e.Reason;
    }

    [Fact]
    public void GeneratedTinyModelValidatesWithItsDeclaredFigures()
    {
        var s = GgufValidator.Validate(_tiny.ModelPath);
        var p = ModelPreset.Tiny;
        Assert.Equal("llama", s.Architecture);
        Assert.Equal("ckllm-generated", s.Name);
        Assert.Equal(p.ParameterCount, s.ParameterCount);
        Assert.Equal(p.ContextLength, s.ContextLength);
        Assert.Equal(p.VocabularySize, s.VocabularySize);
        Assert.Equal(new FileInfo(_tiny.ModelPath).Length, s.FileSize);
        Assert.Null(s.ChatTemplate);
        Assert.False(s.HasChatTemplate);
        Assert.Equal(3u, s.Version);
        Assert.Equal(p.BlockCount, s.BlockCount);
        Assert.Equal(p.EmbeddingLength, s.EmbeddingLength);
    }

    [Fact]
    public void ChatTemplateAndNameAreReported()
    {
        var path = _tiny.NewPath("chat");
        ModelGenerator.Generate(path, new ModelGenerationOptions { ChatTemplate = "{{ messages }}", Name = "named" });
        var s = GgufValidator.Validate(path);
        Assert.Equal("{{ messages }}", s.ChatTemplate);
        Assert.True(s.HasChatTemplate);
        Assert.Equal("named", s.Name);
    }

    [Fact]
    public void OutputTensorMayBeAbsentBecauseLlamaCppTiesItToTheEmbedding()
    {
        var path = _tiny.Rewrite("tied", editTensors: t => t.RemoveAll(x => x.Name == "output.weight"));
        Assert.Equal(ModelPreset.Tiny.VocabularySize, GgufValidator.Validate(path).VocabularySize);
    }

    // ---- structure (GgufReader) ----

    [Fact] public void NotGguf() => Assert.Contains("magic", Reject(_tiny.WriteBytes("text", Encoding.UTF8.GetBytes("hello, this is not a model"))));
    [Fact] public void EmptyFile() => Assert.Contains("magic", Reject(_tiny.WriteBytes("empty", [])));
    [Fact] public void Version1() => Assert.Contains("version 1", Reject(_tiny.WriteBytes("v1", new RawGguf { Version = 1 }.ToBytes())));
    [Fact] public void Version4() => Assert.Contains("unsupported GGUF version 4", Reject(_tiny.WriteBytes("v4", new RawGguf { Version = 4 }.ToBytes())));
    [Fact] public void Version2IsReadable() => Assert.Equal(2u, GgufReader.Read(_tiny.WriteBytes("v2", new RawGguf { Version = 2 }.ToBytes())).Version);
    [Fact] public void TruncatedHeader() => Assert.Contains("truncated", Reject(_tiny.WriteBytes("header", _tiny.Bytes[..10])));
    [Fact] public void HugeMetadataCount() => Assert.Contains("metadata count", Reject(_tiny.WriteBytes("kvcount", new RawGguf { KvCountOverride = ulong.MaxValue / 2 }.ToBytes())));
    [Fact] public void HugeTensorCount() => Assert.Contains("tensor count", Reject(_tiny.WriteBytes("tcount", new RawGguf { TensorCountOverride = 1UL << 40 }.ToBytes())));

    [Fact]
    public void HugeStringLength()
    {
        var bytes = new RawGguf().Kv("general.name", GgufValue.From("abc")).ToBytes();
        BitConverter.GetBytes(ulong.MaxValue - 5).CopyTo(bytes, 24); // the key's length field
        Assert.Contains("claims", Reject(_tiny.WriteBytes("strlen", bytes)));
    }

    [Fact]
    public void HugeArrayCount()
    {
        var bytes = new RawGguf().Kv("k", GgufValue.From(GgufArray.Of(1, 2))).ToBytes();
        BitConverter.GetBytes(1UL << 62).CopyTo(bytes, 24 + 8 + 1 + 4 + 4); // header, key length, "k", type, element type
        Assert.Contains("claims", Reject(_tiny.WriteBytes("arrlen", bytes)));
    }

    [Fact]
    public void InvalidUtf8Key()
    {
        var raw = new RawGguf();
        raw.Metadata.Add((new byte[] { 0x67, 0xC3, 0x28 }, GgufValue.From(1u)));
        Assert.Contains("UTF-8", Reject(_tiny.WriteBytes("utf8", raw.ToBytes())));
    }

    [Fact] public void DuplicateKey() => Assert.Contains("duplicate metadata key 'a'", Reject(_tiny.WriteBytes("dupkey", new RawGguf().Kv("a", GgufValue.From(1u)).Kv("a", GgufValue.From(2u)).ToBytes())));

    [Fact]
    public void DuplicateTensorName() => Assert.Contains("duplicate tensor name", Reject(_tiny.WriteBytes("duptensor",
        new RawGguf { DataBytes = 64 }.Tensor("x", [4], GgmlType.F32, 0).Tensor("x", [4], GgmlType.F32, 32).ToBytes())));

    [Fact]
    public void UnknownValueType()
    {
        var bytes = new RawGguf().Kv("k", GgufValue.From(1u)).ToBytes();
        BitConverter.GetBytes(77u).CopyTo(bytes, 24 + 8 + 1);
        Assert.Contains("unknown value type 77", Reject(_tiny.WriteBytes("vtype", bytes)));
    }

    [Fact] public void UnknownTensorType() => Assert.Contains("unknown ggml type 4", Reject(_tiny.WriteBytes("ttype", new RawGguf { DataBytes = 32 }.Tensor("x", [4], (GgmlType)4, 0).ToBytes())));
    [Fact] public void NoDimensions() => Assert.Contains("0 dimensions", Reject(_tiny.WriteBytes("dims0", new RawGguf { DataBytes = 32 }.Tensor("x", [], GgmlType.F32, 0).ToBytes())));
    [Fact] public void FiveDimensions() => Assert.Contains("5 dimensions", Reject(_tiny.WriteBytes("dims5", new RawGguf { DataBytes = 32 }.Tensor("x", [1, 1, 1, 1, 1], GgmlType.F32, 0).ToBytes())));
    [Fact] public void ZeroSizedDimension() => Assert.Contains("must be positive", Reject(_tiny.WriteBytes("dimzero", new RawGguf { DataBytes = 32 }.Tensor("x", [4, 0], GgmlType.F32, 0).ToBytes())));
    [Fact] public void OverflowingShape() => Assert.Contains("overflow", Reject(_tiny.WriteBytes("overflow", new RawGguf { DataBytes = 32 }.Tensor("x", [1UL << 40, 1UL << 40], GgmlType.F32, 0).ToBytes())));
    [Fact] public void BlockSizeMismatch() => Assert.Contains("block size 32", Reject(_tiny.WriteBytes("block", new RawGguf { DataBytes = 64 }.Tensor("x", [16], GgmlType.Q8_0, 0).ToBytes())));
    [Fact] public void MisalignedOffset() => Assert.Contains("not a multiple of the alignment", Reject(_tiny.WriteBytes("misaligned", new RawGguf { DataBytes = 64 }.Tensor("x", [4], GgmlType.F32, 0).Tensor("y", [4], GgmlType.F32, 20).ToBytes())));
    [Fact] public void OverlappingTensors() => Assert.Contains("overlaps", Reject(_tiny.WriteBytes("overlap", new RawGguf { DataBytes = 128 }.Tensor("x", [16], GgmlType.F32, 0).Tensor("y", [4], GgmlType.F32, 32).ToBytes())));
    [Fact] public void TensorBeyondFile() => Assert.Contains("truncated", Reject(_tiny.WriteBytes("beyond", new RawGguf { DataBytes = 16 }.Tensor("x", [64], GgmlType.F32, 0).ToBytes())));
    [Fact] public void HugeTensorOutsideFile() => Assert.Contains("outside the file", Reject(_tiny.WriteBytes("huge", new RawGguf { DataBytes = 32 }.Tensor("x", [1UL << 30, 64], GgmlType.F32, 0).ToBytes())));
    [Fact] public void AlignmentNotPowerOfTwo() => Assert.Contains("power of two", Reject(_tiny.WriteBytes("align", new RawGguf().Kv("general.alignment", GgufValue.From(48u)).ToBytes())));
    [Fact] public void NonBooleanByte()
    {
        var bytes = new RawGguf().Kv("k", GgufValue.From(true)).ToBytes();
        bytes[24 + 8 + 1 + 4] = 7;
        Assert.Contains("not a boolean", Reject(_tiny.WriteBytes("bool", bytes)));
    }
    [Fact] public void TensorNameTooLong() => Assert.Contains("longer than", Reject(_tiny.WriteBytes("longname", new RawGguf { DataBytes = 32 }.Tensor(new string('n', 64), [4], GgmlType.F32, 0).ToBytes())));

    // ---- model semantics (GgufValidator) ----

    [Fact] public void NestedArray() => Assert.Contains("array of arrays", Reject(_tiny.Rewrite("nested", m => m.Add(new("x.nested", GgufValue.From(new GgufArray(GgufValueType.Array, new[] { GgufArray.Of(1) })))))));
    [Fact] public void MissingArchitecture() => Assert.Contains("general.architecture is missing", Reject(_tiny.Rewrite("noarch", m => m.RemoveAll(x => x.Key == "general.architecture"))));
    [Fact] public void ArchitectureOfWrongType() => Assert.Contains("expected String", Reject(_tiny.Rewrite("archtype", m => Replace(m, "general.architecture", GgufValue.From(3u)))));
    [Fact] public void UnsupportedArchitecture() => Assert.Contains("'llama9' is not supported", Reject(_tiny.Rewrite("arch", m => Replace(m, "general.architecture", GgufValue.From("llama9")))));
    [Fact] public void AdapterIsNotAModel() => Assert.Contains("adapter", Reject(_tiny.Rewrite("adapter", m => m.Add(new("general.type", GgufValue.From("adapter"))))));

    [Theory]
    [InlineData("llama.context_length")]
    [InlineData("llama.embedding_length")]
    [InlineData("llama.block_count")]
    [InlineData("llama.attention.head_count")]
    [InlineData("llama.feed_forward_length")]
    [InlineData("llama.attention.layer_norm_rms_epsilon")]
    public void MissingHyperParameter(string key) => Assert.Contains(key, Reject(_tiny.Rewrite("nohp", m => m.RemoveAll(x => x.Key == key))));

    [Fact] public void HyperParameterOfWrongType() => Assert.Contains("llama.block_count' has type Float32, but llama.cpp requires UInt32", Reject(_tiny.Rewrite("hptype", m => Replace(m, "llama.block_count", GgufValue.From(2f)))));
    [Fact] public void SpecialTokenIdOfWrongType() => Assert.Contains("requires UInt32", Reject(_tiny.Rewrite("unkid", m => Replace(m, "tokenizer.ggml.unknown_token_id", GgufValue.From(0)))));
    [Fact] public void OptionalKeyOfWrongType() => Assert.Contains("'llama.rope.freq_base' has type UInt32, but llama.cpp requires Float32", Reject(_tiny.Rewrite("freq", m => Replace(m, "llama.rope.freq_base", GgufValue.From(10000u)))));
    [Fact] public void TooManyBlocks() => Assert.Contains("out of range", Reject(_tiny.Rewrite("blocks", m => Replace(m, "llama.block_count", GgufValue.From(100000u)))));
    [Fact] public void HeadCountKvDoesNotDivide() => Assert.Contains("head_count_kv", Reject(_tiny.Rewrite("gqa", m => Replace(m, "llama.attention.head_count_kv", GgufValue.From(3u)))));
    [Fact] public void MissingTokenizerModel() => Assert.Contains("tokenizer.ggml.model", Reject(_tiny.Rewrite("notok", m => m.RemoveAll(x => x.Key == "tokenizer.ggml.model"))));
    [Fact] public void UnknownTokenizerModel() => Assert.Contains("'sentencepiece9'", Reject(_tiny.Rewrite("tokmodel", m => Replace(m, "tokenizer.ggml.model", GgufValue.From("sentencepiece9")))));
    [Fact] public void MissingTokens() => Assert.Contains("tokenizer.ggml.tokens is missing", Reject(_tiny.Rewrite("notokens", m => m.RemoveAll(x => x.Key == "tokenizer.ggml.tokens"))));
    [Fact] public void ScoresShorterThanTokens() => Assert.Contains("tokenizer.ggml.scores has 3 entries", Reject(_tiny.Rewrite("scores", m => Replace(m, "tokenizer.ggml.scores", GgufValue.From(GgufArray.Of(1f, 2f, 3f))))));
    [Fact] public void TokenTypesOfWrongElementType() => Assert.Contains("token_type must be an array of Int32", Reject(_tiny.Rewrite("ttypes", m => Replace(m, "tokenizer.ggml.token_type", GgufValue.From(GgufArray.Of("x"))))));
    [Fact] public void SpecialTokenOutOfRange() => Assert.Contains("eos_token_id = 9999", Reject(_tiny.Rewrite("eos", m => Replace(m, "tokenizer.ggml.eos_token_id", GgufValue.From(9999u)))));
    [Fact]
    public void DuplicateToken()
    {
        // Found by the bit-flip fuzz test: llama.cpp aborts (GGML_ASSERT in llama-vocab.cpp) on a repeated token.
        var tokens = _tiny.File_.GetArray<string>("tokenizer.ggml.tokens").ToArray();
        tokens[300] = tokens[301];
        Assert.Contains("appears more than once", Reject(_tiny.Rewrite("duptoken", m => Replace(m, "tokenizer.ggml.tokens", GgufValue.From(GgufArray.Of(tokens))))));
    }

    [Fact] public void MissingTokenEmbedding() => Assert.Contains("token_embd.weight is missing", Reject(_tiny.Rewrite("noembd", editTensors: t => t.RemoveAll(x => x.Name == "token_embd.weight"))));

    [Fact]
    public void TokenEmbeddingDisagreesWithVocabulary()
    {
        var tokens = _tiny.File_.GetArray<string>("tokenizer.ggml.tokens");
        var reason = Reject(_tiny.Rewrite("vocab", m =>
        {
            Replace(m, "tokenizer.ggml.tokens", GgufValue.From(GgufArray.Of(tokens[..^1])));
            m.RemoveAll(x => x.Key is "tokenizer.ggml.scores" or "tokenizer.ggml.token_type");
        }));
        Assert.Contains("token_embd.weight has shape [64, 512], expected [64, 511]", reason);
    }

    [Fact] public void MissingBlockTensor() => Assert.Contains("blk.1.ffn_up.weight is missing", Reject(_tiny.Rewrite("noblk", editTensors: t => t.RemoveAll(x => x.Name == "blk.1.ffn_up.weight"))));
    [Fact] public void WrongBlockTensorShape() => Assert.Contains("blk.0.attn_k.weight has shape [64, 64], expected [64, 32]", Reject(_tiny.Rewrite("shape", editTensors: t => t[t.FindIndex(x => x.Name == "blk.0.attn_k.weight")] = ("blk.0.attn_k.weight", [64, 64]))));
    [Fact] public void BlockIndexBeyondBlockCount() => Assert.Contains("block 2, but block_count is 2", Reject(_tiny.Rewrite("blk2", editTensors: t => t.Add(("blk.2.attn_norm.weight", [64])))));
    [Fact] public void UnexpectedTensor() => Assert.Contains("'extra.weight' is not part of a llama model", Reject(_tiny.Rewrite("extra", editTensors: t => t.Add(("extra.weight", [64])))));

    [Fact]
    public void OtherArchitecturesGetGenericChecks()
    {
        // A qwen2-labelled copy passes the generic checks (hyper-parameters renamed, token_embd consistent).
        var path = _tiny.Rewrite("qwen2", m =>
        {
            for (int i = 0; i < m.Count; i++)
                if (m[i].Key.StartsWith("llama.", StringComparison.Ordinal)) m[i] = new("qwen2." + m[i].Key["llama.".Length..], m[i].Value);
            Replace(m, "general.architecture", GgufValue.From("qwen2"));
        });
        Assert.Equal("qwen2", GgufValidator.Validate(path).Architecture);
    }
}
