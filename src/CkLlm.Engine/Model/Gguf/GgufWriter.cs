using System.Text;

namespace CkLlm.Engine.Model.Gguf;

/// <summary>
/// Writes GGUF v3 files: metadata key/values, a tensor table and aligned tensor data. Tensors are kept in memory
/// until <see cref="WriteTo(string)"/>; the file is written to a temporary name and renamed, so a crash never
/// leaves a half-written model under the final name.
/// </summary>
public sealed class GgufWriter
{
    public const uint Magic = 0x46554747; // "GGUF" little-endian
    public const uint Version = 3;
    public const int DefaultAlignment = 32;

    private readonly List<(string Key, GgufValueType Type, object Value)> _metadata = new();
    private readonly List<(string Name, long[] Shape, GgmlType Type, byte[] Data)> _tensors = new();

    public int Alignment { get; set; } = DefaultAlignment;

    public GgufWriter Add(string key, string value) => AddRaw(key, GgufValueType.String, value);
    public GgufWriter Add(string key, uint value) => AddRaw(key, GgufValueType.UInt32, value);
    public GgufWriter Add(string key, int value) => AddRaw(key, GgufValueType.Int32, value);
    public GgufWriter Add(string key, float value) => AddRaw(key, GgufValueType.Float32, value);
    public GgufWriter Add(string key, bool value) => AddRaw(key, GgufValueType.Bool, value);
    public GgufWriter Add(string key, ulong value) => AddRaw(key, GgufValueType.UInt64, value);
    public GgufWriter Add(string key, IReadOnlyList<string> values) => AddRaw(key, GgufValueType.Array, (GgufValueType.String, (object)values));
    public GgufWriter Add(string key, IReadOnlyList<float> values) => AddRaw(key, GgufValueType.Array, (GgufValueType.Float32, (object)values));
    public GgufWriter Add(string key, IReadOnlyList<int> values) => AddRaw(key, GgufValueType.Array, (GgufValueType.Int32, (object)values));

    /// <summary>Adds a value of any of the 13 GGUF types, including (nested) arrays.</summary>
    public GgufWriter Add(string key, GgufValue value) => AddRaw(key, value.Type, value);

    private GgufWriter AddRaw(string key, GgufValueType type, object value)
    {
        _metadata.Add((key, type, value));
        return this;
    }

    /// <summary>Adds an F32 tensor. <paramref name="shape"/> is in ggml order (innermost dimension first).</summary>
    public GgufWriter AddTensor(string name, long[] shape, ReadOnlySpan<float> data)
    {
        var bytes = new byte[data.Length * sizeof(float)];
        System.Runtime.InteropServices.MemoryMarshal.AsBytes(data).CopyTo(bytes);
        return AddTensor(name, shape, GgmlType.F32, bytes);
    }

    /// <summary>Adds a tensor whose data is already encoded in <paramref name="type"/>.</summary>
    public GgufWriter AddTensor(string name, long[] shape, GgmlType type, byte[] data)
    {
        if (!GgmlTypeInfo.TryGetBlock(type, out var blockSize, out var typeSize))
            throw new ArgumentException($"Unknown ggml type {type}.", nameof(type));
        long elements = shape.Aggregate(1L, (a, b) => a * b);
        if (shape[0] % blockSize != 0 || elements / blockSize * typeSize != data.Length)
            throw new ArgumentException($"Tensor '{name}': {data.Length} bytes do not hold {elements} {type} elements.");
        _tensors.Add((name, shape, type, data));
        return this;
    }

    /// <summary>Writes the file; a cancelled write removes its temporary file and leaves <paramref name="path"/> untouched.</summary>
    public void WriteTo(string path, CancellationToken cancellationToken = default)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = full + ".tmp-" + Environment.ProcessId;
        try
        {
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
                WriteTo(stream, cancellationToken);
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    public void WriteTo(Stream stream, CancellationToken cancellationToken = default)
    {
        var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        w.Write(Magic);
        w.Write(Version);
        w.Write((ulong)_tensors.Count);
        var metadata = _metadata.ToList();
        if (Alignment != DefaultAlignment) metadata.Add(("general.alignment", GgufValueType.UInt32, (uint)Alignment));
        w.Write((ulong)metadata.Count);
        foreach (var (key, type, value) in metadata)
        {
            WriteString(w, key);
            if (value is GgufValue generic)
            {
                w.Write((uint)generic.Type);
                WriteGeneric(w, generic.Type, generic.Value);
                continue;
            }
            w.Write((uint)type);
            WriteValue(w, type, value);
        }

        long offset = 0;
        var offsets = new long[_tensors.Count];
        for (int i = 0; i < _tensors.Count; i++)
        {
            var (name, shape, type, data) = _tensors[i];
            WriteString(w, name);
            w.Write((uint)shape.Length);
            foreach (var d in shape) w.Write((ulong)d);
            w.Write((uint)type);
            w.Write((ulong)offset);
            offsets[i] = offset;
            offset = AlignUp(offset + data.Length);
        }
        w.Flush();
        Pad(stream, AlignUp(stream.Position) - stream.Position);
        long dataStart = stream.Position;
        for (int i = 0; i < _tensors.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Pad(stream, dataStart + offsets[i] - stream.Position);
            stream.Write(_tensors[i].Data);
        }
        Pad(stream, AlignUp(stream.Position - dataStart) - (stream.Position - dataStart));
        stream.Flush();
    }

    private long AlignUp(long value) => (value + Alignment - 1) / Alignment * Alignment;

    private static void Pad(Stream stream, long count)
    {
        for (long i = 0; i < count; i++) stream.WriteByte(0);
    }

    internal static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    internal static void WriteGeneric(BinaryWriter w, GgufValueType type, object value)
    {
        switch (type)
        {
            case GgufValueType.UInt8: w.Write((byte)value); break;
            case GgufValueType.Int8: w.Write((sbyte)value); break;
            case GgufValueType.UInt16: w.Write((ushort)value); break;
            case GgufValueType.Int16: w.Write((short)value); break;
            case GgufValueType.UInt32: w.Write((uint)value); break;
            case GgufValueType.Int32: w.Write((int)value); break;
            case GgufValueType.Float32: w.Write((float)value); break;
            case GgufValueType.Bool: w.Write((bool)value ? (byte)1 : (byte)0); break;
            case GgufValueType.String: WriteString(w, (string)value); break;
            case GgufValueType.UInt64: w.Write((ulong)value); break;
            case GgufValueType.Int64: w.Write((long)value); break;
            case GgufValueType.Float64: w.Write((double)value); break;
            case GgufValueType.Array:
                var array = (GgufArray)value;
                w.Write((uint)array.ElementType);
                w.Write((ulong)array.Count);
                foreach (var item in array.Items) WriteGeneric(w, array.ElementType, item!);
                break;
            default: throw new NotSupportedException(type.ToString());
        }
    }

    private static void WriteValue(BinaryWriter w, GgufValueType type, object value)
    {
        switch (type)
        {
            case GgufValueType.String: WriteString(w, (string)value); break;
            case GgufValueType.UInt32: w.Write((uint)value); break;
            case GgufValueType.Int32: w.Write((int)value); break;
            case GgufValueType.Float32: w.Write((float)value); break;
            case GgufValueType.Bool: w.Write((bool)value ? (byte)1 : (byte)0); break;
            case GgufValueType.UInt64: w.Write((ulong)value); break;
            case GgufValueType.Array:
                var (elementType, items) = ((GgufValueType, object))value;
                w.Write((uint)elementType);
                switch (items)
                {
                    case IReadOnlyList<string> strings: w.Write((ulong)strings.Count); foreach (var s in strings) WriteString(w, s); break;
                    case IReadOnlyList<float> floats: w.Write((ulong)floats.Count); foreach (var f in floats) w.Write(f); break;
                    case IReadOnlyList<int> ints: w.Write((ulong)ints.Count); foreach (var n in ints) w.Write(n); break;
                    default: throw new NotSupportedException(items.GetType().Name);
                }
                break;
            default: throw new NotSupportedException(type.ToString());
        }
    }
}
