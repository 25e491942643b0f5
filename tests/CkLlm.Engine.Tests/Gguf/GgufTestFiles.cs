using System.Text;
using CkLlm.Engine.Model.Generation;
using CkLlm.Engine.Model.Gguf;

namespace CkLlm.Engine.Tests.Gguf;

/// <summary>A generated Tiny model shared by a test class, plus helpers to derive good and bad variants of it.</summary>
public class TinyModelFixture : IDisposable
{
    public TinyModelFixture() : this(new ModelGenerationOptions { Preset = ModelPreset.Tiny, Seed = 1 }) { }

    /// <summary>For fixtures of other architectures (xunit needs one public constructor per fixture type).</summary>
    protected TinyModelFixture(ModelGenerationOptions options)
    {
        Directory = Path.Combine(Path.GetTempPath(), $"ckllm-gguf-{Guid.NewGuid():N}");
        System.IO.Directory.CreateDirectory(Directory);
        ModelPath = Path.Combine(Directory, "tiny.gguf");
        ModelGenerator.Generate(ModelPath, options);
        Bytes = File.ReadAllBytes(ModelPath);
        File_ = GgufReader.Read(ModelPath);
    }

    public string Directory { get; }
    public string ModelPath { get; }
    public byte[] Bytes { get; }
    public GgufFile File_ { get; }

    private int _counter;

    public string NewPath(string name) => Path.Combine(Directory, $"{Interlocked.Increment(ref _counter)}-{name}.gguf");

    public string WriteBytes(string name, byte[] bytes)
    {
        var path = NewPath(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>
    /// Rewrites the Tiny model after editing its metadata and tensor list; tensors whose shape is unchanged keep their
    /// data, others get zero F32 data of the new size.
    /// </summary>
    public string Rewrite(string name, Action<List<GgufMetadataEntry>>? editMetadata = null, Action<List<(string Name, long[] Shape)>>? editTensors = null)
    {
        var metadata = File_.Metadata.ToList();
        editMetadata?.Invoke(metadata);
        var tensors = File_.Tensors.Select(t => (t.Name, t.Shape.ToArray())).ToList();
        editTensors?.Invoke(tensors);
        var writer = new GgufWriter();
        foreach (var m in metadata) writer.Add(m.Key, m.Value);
        foreach (var (tensorName, shape) in tensors)
        {
            var original = File_.FindTensor(tensorName);
            if (original is not null && original.Shape.SequenceEqual(shape))
                writer.AddTensor(tensorName, shape, original.Type, Bytes.AsSpan((int)(File_.DataOffset + original.Offset), (int)original.ByteSize).ToArray());
            else
                writer.AddTensor(tensorName, shape, new float[shape.Aggregate(1L, (a, b) => a * b)]);
        }
        var path = NewPath(name);
        writer.WriteTo(path);
        return path;
    }

    public static void Replace(List<GgufMetadataEntry> metadata, string key, GgufValue value)
    {
        int i = metadata.FindIndex(m => m.Key == key);
        if (i < 0) metadata.Add(new GgufMetadataEntry(key, value)); else metadata[i] = new GgufMetadataEntry(key, value);
    }

    public void Dispose()
    {
        try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { }
    }
}

/// <summary>
/// Writes GGUF bytes field by field, with no checks, so tests can produce exactly the corruption they name.
/// </summary>
public sealed class RawGguf
{
    public uint Magic { get; set; } = GgufWriter.Magic;
    public uint Version { get; set; } = 3;
    public ulong? TensorCountOverride { get; set; }
    public ulong? KvCountOverride { get; set; }
    public List<(byte[] Key, GgufValue Value)> Metadata { get; } = new();
    public List<(string Name, ulong[] Dims, uint Type, ulong Offset)> Tensors { get; } = new();
    public long DataBytes { get; set; }
    public int Alignment { get; set; } = 32;

    public RawGguf Kv(string key, GgufValue value) { Metadata.Add((Encoding.UTF8.GetBytes(key), value)); return this; }

    public RawGguf Tensor(string name, ulong[] dims, GgmlType type, ulong offset) { Tensors.Add((name, dims, (uint)type, offset)); return this; }

    public byte[] ToBytes()
    {
        using var stream = new MemoryStream();
        var w = new BinaryWriter(stream);
        w.Write(Magic); w.Write(Version);
        w.Write(TensorCountOverride ?? (ulong)Tensors.Count);
        w.Write(KvCountOverride ?? (ulong)Metadata.Count);
        foreach (var (key, value) in Metadata)
        {
            w.Write((ulong)key.Length); w.Write(key);
            w.Write((uint)value.Type);
            GgufWriter.WriteGeneric(w, value.Type, value.Value);
        }
        foreach (var (name, dims, type, offset) in Tensors)
        {
            GgufWriter.WriteString(w, name);
            w.Write((uint)dims.Length);
            foreach (var d in dims) w.Write(d);
            w.Write(type); w.Write(offset);
        }
        w.Flush();
        while (stream.Length % Alignment != 0) stream.WriteByte(0);
        stream.Write(new byte[DataBytes]);
        return stream.ToArray();
    }
}
