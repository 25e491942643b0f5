using System.Runtime.InteropServices;
using System.Text;

namespace CkLlm.Engine.Model.Gguf;

/// <summary>
/// Reads the structure of a GGUF v2/v3 file (header, metadata, tensor table) without loading tensor data.
/// Every length and count is checked against the bytes left in the file before anything is allocated, so a
/// corrupt file fails with <see cref="GgufFormatException"/> and never with a huge allocation or another exception.
/// The structural rules follow llama.cpp's own gguf reader (ggml/src/gguf.cpp): unique keys and tensor names,
/// known types, 1..4 positive dimensions, tensors laid out in table order at aligned offsets inside the file.
/// </summary>
public static class GgufReader
{
    public const int MaxDimensions = 4;      // GGML_MAX_DIMS
    public const int MaxTensorNameLength = 63; // GGML_MAX_NAME - 1 (the name must fit with its terminating zero)

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Reads <paramref name="path"/>. Throws FileNotFoundException when it does not exist.</summary>
    public static GgufFile Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Model file '{path}' does not exist.", path);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        return Read(stream, path);
    }

    /// <summary>Reads a seekable stream positioned at the start of a GGUF file; <paramref name="displayPath"/> names it in errors.</summary>
    public static GgufFile Read(Stream stream, string displayPath)
    {
        try
        {
            using var parser = new Parser(stream, displayPath);
            return parser.Parse();
        }
        catch (EndOfStreamException)
        {
            throw new GgufFormatException(displayPath, "the file is truncated.");
        }
    }

    private sealed class Parser : IDisposable
    {
        private readonly Stream _stream;
        private readonly BinaryReader _reader;
        private readonly string _path;
        private readonly long _length;

        public Parser(Stream stream, string path)
        {
            _stream = stream;
            _reader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
            _path = path;
            _length = stream.Length;
        }

        private long Remaining => _length - _stream.Position;

        private GgufFormatException Bad(string reason) => new(_path, reason);

        private void Need(long bytes, string what)
        {
            if (bytes < 0 || bytes > Remaining) throw Bad($"the file is truncated ({what} needs {bytes} bytes, {Remaining} left).");
        }

        public GgufFile Parse()
        {
            if (_length < 4) throw Bad("the file is too short to be GGUF (it does not start with the GGUF magic).");
            if (_reader.ReadUInt32() != GgufWriter.Magic) throw Bad("it does not start with the GGUF magic.");
            Need(4 + 8 + 8, "the header");
            uint version = _reader.ReadUInt32();
            if (version is not (2 or 3))
                throw Bad(version == 1 ? "GGUF version 1 is no longer supported by llama.cpp." : $"unsupported GGUF version {version} (supported: 2, 3).");
            ulong tensorCount = _reader.ReadUInt64();
            ulong kvCount = _reader.ReadUInt64();
            // Smallest possible entries: key (8-byte length) + type (4) + a one-byte value; tensor info 8+4+8+4+8.
            if (kvCount > (ulong)Remaining / 13) throw Bad($"the metadata count {kvCount} cannot fit in the file (truncated or corrupt).");
            if (tensorCount > (ulong)Remaining / 32) throw Bad($"the tensor count {tensorCount} cannot fit in the file (truncated or corrupt).");

            var metadata = new List<GgufMetadataEntry>((int)kvCount);
            var keys = new HashSet<string>(StringComparer.Ordinal);
            for (ulong i = 0; i < kvCount; i++)
            {
                var key = ReadString("a metadata key", strict: true);
                if (key.Length == 0) throw Bad($"metadata entry {i} has an empty key.");
                if (!keys.Add(key)) throw Bad($"duplicate metadata key '{key}'.");
                Need(4, $"the type of '{key}'");
                var type = (GgufValueType)_reader.ReadUInt32();
                if (!Enum.IsDefined(type)) throw Bad($"metadata key '{key}' has unknown value type {(uint)type}.");
                metadata.Add(new GgufMetadataEntry(key, ReadValue(type, key, depth: 0)));
            }

            int alignment = GgufWriter.DefaultAlignment;
            var alignmentEntry = metadata.FirstOrDefault(m => m.Key == "general.alignment");
            if (alignmentEntry is not null)
            {
                if (alignmentEntry.Value.Value is not uint a) throw Bad($"general.alignment has type {alignmentEntry.Value.Type}, expected UInt32.");
                if (a == 0 || (a & (a - 1)) != 0) throw Bad($"general.alignment {a} is not a power of two.");
                if (a > 1u << 30) throw Bad($"general.alignment {a} is too large.");
                alignment = (int)a;
            }

            var tensors = new List<GgufTensorInfo>((int)tensorCount);
            var names = new HashSet<string>(StringComparer.Ordinal);
            long expectedOffset = 0;
            for (ulong i = 0; i < tensorCount; i++)
            {
                var name = ReadString("a tensor name", strict: true);
                if (name.Length == 0) throw Bad($"tensor {i} has an empty name.");
                if (Encoding.UTF8.GetByteCount(name) > MaxTensorNameLength) throw Bad($"tensor name '{name}' is longer than {MaxTensorNameLength} bytes.");
                if (!names.Add(name)) throw Bad($"duplicate tensor name '{name}'.");
                Need(4, $"the dimension count of '{name}'");
                uint dimensionCount = _reader.ReadUInt32();
                if (dimensionCount is 0 or > MaxDimensions) throw Bad($"tensor '{name}' has {dimensionCount} dimensions (must be 1 to {MaxDimensions}).");
                Need(8L * dimensionCount + 4 + 8, $"the shape of '{name}'");
                var shape = new long[dimensionCount];
                long elements = 1;
                for (int d = 0; d < dimensionCount; d++)
                {
                    ulong size = _reader.ReadUInt64();
                    if (size == 0 || size > long.MaxValue) throw Bad($"tensor '{name}' has dimension {d} of size {size} (must be positive).");
                    shape[d] = (long)size;
                    if (elements > long.MaxValue / shape[d]) throw Bad($"tensor '{name}' has too many elements (shape overflows).");
                    elements *= shape[d];
                }
                uint rawType = _reader.ReadUInt32();
                var type = (GgmlType)rawType;
                if (!Enum.IsDefined(type) || !GgmlTypeInfo.TryGetBlock(type, out var blockSize, out var typeSize))
                    throw Bad($"tensor '{name}' has unknown ggml type {rawType}.");
                if (shape[0] % blockSize != 0) throw Bad($"tensor '{name}': first dimension {shape[0]} is not a multiple of the {type} block size {blockSize}.");
                long blocks = elements / blockSize;
                if (blocks > long.MaxValue / typeSize) throw Bad($"tensor '{name}' is too large (byte size overflows).");
                long byteSize = blocks * typeSize;
                ulong offset = _reader.ReadUInt64();
                // llama.cpp requires the data of tensor i to start exactly where tensor i-1 ended, padded to the alignment.
                if (offset != (ulong)expectedOffset)
                    throw Bad(offset % (ulong)alignment != 0
                        ? $"tensor '{name}' has offset {offset}, which is not a multiple of the alignment {alignment}."
                        : $"tensor '{name}' has offset {offset}, expected {expectedOffset} (tensor data overlaps or leaves gaps).");
                long padded = AlignUp(byteSize, alignment);
                if (padded < 0 || padded > _length || expectedOffset > _length - padded)
                    throw Bad($"tensor '{name}' ({byteSize} bytes at offset {offset}) lies outside the file (the file is truncated or the table corrupt).");
                expectedOffset += padded;
                tensors.Add(new GgufTensorInfo(name, shape, type, (long)offset, byteSize));
            }

            long dataOffset = AlignUp(_stream.Position, alignment);
            long dataEnd = tensors.Count == 0 ? dataOffset : dataOffset + tensors[^1].Offset + tensors[^1].ByteSize;
            if (tensors.Count > 0 && dataEnd > _length)
            {
                var outside = tensors.First(t => dataOffset + t.Offset + t.ByteSize > _length);
                throw Bad($"the file is truncated: tensor '{outside.Name}' ends at byte {dataOffset + outside.Offset + outside.ByteSize} but the file has {_length} bytes.");
            }
            return new GgufFile(_path, version, _length, alignment, dataOffset, metadata, tensors);
        }

        private static long AlignUp(long value, int alignment) => (value + alignment - 1) / alignment * alignment;

        private string ReadString(string what, bool strict)
        {
            Need(8, what);
            ulong length = _reader.ReadUInt64();
            if (length > (ulong)Remaining) throw Bad($"the file is truncated or corrupt ({what} claims {length} bytes, {Remaining} left).");
            if (length > int.MaxValue) throw Bad($"{what} is too long ({length} bytes).");
            var bytes = _reader.ReadBytes((int)length);
            if (!strict) return Encoding.UTF8.GetString(bytes);
            try { return StrictUtf8.GetString(bytes); }
            catch (DecoderFallbackException) { throw Bad($"{what} is not valid UTF-8."); }
        }

        private GgufValue ReadValue(GgufValueType type, string key, int depth)
        {
            switch (type)
            {
                case GgufValueType.String: return new(type, ReadString($"the string value of '{key}'", strict: false));
                case GgufValueType.Array: return new(type, ReadArray(key, depth));
            }
            int size = ElementSize(type);
            Need(size, $"the value of '{key}'");
            object value = type switch
            {
                GgufValueType.UInt8 => _reader.ReadByte(),
                GgufValueType.Int8 => _reader.ReadSByte(),
                GgufValueType.UInt16 => _reader.ReadUInt16(),
                GgufValueType.Int16 => _reader.ReadInt16(),
                GgufValueType.UInt32 => _reader.ReadUInt32(),
                GgufValueType.Int32 => _reader.ReadInt32(),
                GgufValueType.Float32 => _reader.ReadSingle(),
                GgufValueType.Bool => ReadBool(key),
                GgufValueType.UInt64 => _reader.ReadUInt64(),
                GgufValueType.Int64 => _reader.ReadInt64(),
                GgufValueType.Float64 => _reader.ReadDouble(),
                _ => throw Bad($"metadata key '{key}' has unknown value type {(uint)type}."),
            };
            return new(type, value);
        }

        private bool ReadBool(string key)
        {
            byte b = _reader.ReadByte();
            if (b > 1) throw Bad($"metadata key '{key}' holds the byte {b}, which is not a boolean (0 or 1).");
            return b == 1;
        }

        private GgufArray ReadArray(string key, int depth)
        {
            if (depth > 8) throw Bad($"metadata key '{key}' nests arrays too deeply.");
            Need(4 + 8, $"the array header of '{key}'");
            var elementType = (GgufValueType)_reader.ReadUInt32();
            if (!Enum.IsDefined(elementType)) throw Bad($"metadata key '{key}' is an array of unknown value type {(uint)elementType}.");
            ulong count = _reader.ReadUInt64();
            int minSize = elementType switch { GgufValueType.String => 8, GgufValueType.Array => 12, _ => ElementSize(elementType) };
            if (count > (ulong)Remaining / (ulong)minSize || count > int.MaxValue)
                throw Bad($"the file is truncated or corrupt (array '{key}' claims {count} elements, {Remaining} bytes left).");
            int n = (int)count;
            switch (elementType)
            {
                case GgufValueType.String:
                    var strings = new string[n];
                    for (int i = 0; i < n; i++) strings[i] = ReadString($"element {i} of '{key}'", strict: false);
                    return new GgufArray(elementType, strings);
                case GgufValueType.Array:
                    var arrays = new GgufArray[n];
                    for (int i = 0; i < n; i++) arrays[i] = ReadArray(key, depth + 1);
                    return new GgufArray(elementType, arrays);
                case GgufValueType.Bool:
                    var bools = new bool[n];
                    for (int i = 0; i < n; i++) bools[i] = ReadBool(key);
                    return new GgufArray(elementType, bools);
            }
            var bytes = _reader.ReadBytes(n * minSize);
            Array items = elementType switch
            {
                GgufValueType.UInt8 => bytes,
                GgufValueType.Int8 => MemoryMarshal.Cast<byte, sbyte>(bytes).ToArray(),
                GgufValueType.UInt16 => MemoryMarshal.Cast<byte, ushort>(bytes).ToArray(),
                GgufValueType.Int16 => MemoryMarshal.Cast<byte, short>(bytes).ToArray(),
                GgufValueType.UInt32 => MemoryMarshal.Cast<byte, uint>(bytes).ToArray(),
                GgufValueType.Int32 => MemoryMarshal.Cast<byte, int>(bytes).ToArray(),
                GgufValueType.Float32 => MemoryMarshal.Cast<byte, float>(bytes).ToArray(),
                GgufValueType.UInt64 => MemoryMarshal.Cast<byte, ulong>(bytes).ToArray(),
                GgufValueType.Int64 => MemoryMarshal.Cast<byte, long>(bytes).ToArray(),
                GgufValueType.Float64 => MemoryMarshal.Cast<byte, double>(bytes).ToArray(),
                _ => throw Bad($"metadata key '{key}' is an array of unknown value type {(uint)elementType}."),
            };
            return new GgufArray(elementType, items);
        }

        /// <summary>Releases the reader only; the caller owns the stream (leaveOpen).</summary>
        public void Dispose() => _reader.Dispose();
    }

    internal static int ElementSize(GgufValueType type) => type switch
    {
        GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
        GgufValueType.UInt16 or GgufValueType.Int16 => 2,
        GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
        GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
        _ => 0,
    };
}

/// <summary>The parsed structure of a GGUF file: metadata in file order and the tensor table.</summary>
public sealed class GgufFile
{
    private readonly Dictionary<string, GgufValue> _byKey;
    private readonly Dictionary<string, GgufTensorInfo> _tensorsByName;

    internal GgufFile(string path, uint version, long fileSize, int alignment, long dataOffset,
        IReadOnlyList<GgufMetadataEntry> metadata, IReadOnlyList<GgufTensorInfo> tensors)
    {
        Path = path; Version = version; FileSize = fileSize; Alignment = alignment; DataOffset = dataOffset;
        Metadata = metadata; Tensors = tensors;
        _byKey = metadata.ToDictionary(m => m.Key, m => m.Value, StringComparer.Ordinal);
        _tensorsByName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    public string Path { get; }
    public uint Version { get; }
    public long FileSize { get; }
    public int Alignment { get; }

    /// <summary>Absolute file offset of the tensor data section; tensor offsets are relative to it.</summary>
    public long DataOffset { get; }

    public IReadOnlyList<GgufMetadataEntry> Metadata { get; }
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }

    public bool ContainsKey(string key) => _byKey.ContainsKey(key);

    public bool TryGetValue(string key, out GgufValue value) => _byKey.TryGetValue(key, out value!);

    public GgufTensorInfo? FindTensor(string name) => _tensorsByName.GetValueOrDefault(name);

    /// <summary>The string at <paramref name="key"/>; GgufFormatException when missing or of another type.</summary>
    public string GetString(string key) => Get<string>(key, GgufValueType.String);
    public uint GetUInt32(string key) => Get<uint>(key, GgufValueType.UInt32);
    public int GetInt32(string key) => Get<int>(key, GgufValueType.Int32);
    public ulong GetUInt64(string key) => Get<ulong>(key, GgufValueType.UInt64);
    public float GetFloat32(string key) => Get<float>(key, GgufValueType.Float32);
    public bool GetBool(string key) => Get<bool>(key, GgufValueType.Bool);
    public GgufArray GetArray(string key) => Get<GgufArray>(key, GgufValueType.Array);

    public string? GetStringOrNull(string key) => TryGet<string>(key, GgufValueType.String, out var v) ? v : null;
    public uint? GetUInt32OrNull(string key) => TryGet<uint>(key, GgufValueType.UInt32, out var v) ? v : null;

    /// <summary>An array whose elements are <typeparamref name="T"/> (string, float, int, ...).</summary>
    public T[] GetArray<T>(string key)
    {
        var array = GetArray(key);
        return array.Items as T[] ?? throw new GgufFormatException(Path, $"metadata array '{key}' holds {array.ElementType} elements, expected {typeof(T).Name}.");
    }

    /// <summary>Any unsigned or non-negative integer value widened to ulong (llama.cpp accepts several widths for ids).</summary>
    public bool TryGetUnsigned(string key, out ulong value)
    {
        value = 0;
        if (!_byKey.TryGetValue(key, out var v)) return false;
        switch (v.Value)
        {
            case byte b: value = b; return true;
            case ushort s: value = s; return true;
            case uint u: value = u; return true;
            case ulong l: value = l; return true;
            case sbyte sb when sb >= 0: value = (ulong)sb; return true;
            case short sh when sh >= 0: value = (ulong)sh; return true;
            case int i when i >= 0: value = (ulong)i; return true;
            case long l2 when l2 >= 0: value = (ulong)l2; return true;
            default: return false;
        }
    }

    private T Get<T>(string key, GgufValueType type)
    {
        if (!_byKey.TryGetValue(key, out var v)) throw new GgufFormatException(Path, $"metadata key '{key}' is missing.");
        if (v.Type != type || v.Value is not T typed) throw new GgufFormatException(Path, $"metadata key '{key}' has type {v.Type}, expected {type}.");
        return typed;
    }

    private bool TryGet<T>(string key, GgufValueType type, out T value)
    {
        value = default!;
        if (!_byKey.TryGetValue(key, out var v) || v.Type != type || v.Value is not T typed) return false;
        value = typed;
        return true;
    }
}
