namespace CkLlm.Engine.Model.Gguf;

/// <summary>
/// One GGUF metadata value. <see cref="Value"/> holds the matching CLR type: byte, sbyte, ushort, short, uint, int,
/// float, bool, string, ulong, long, double, or a <see cref="GgufArray"/> for <see cref="GgufValueType.Array"/>.
/// </summary>
public sealed record GgufValue(GgufValueType Type, object Value)
{
    public static GgufValue From(string value) => new(GgufValueType.String, value);
    public static GgufValue From(uint value) => new(GgufValueType.UInt32, value);
    public static GgufValue From(int value) => new(GgufValueType.Int32, value);
    public static GgufValue From(float value) => new(GgufValueType.Float32, value);
    public static GgufValue From(bool value) => new(GgufValueType.Bool, value);
    public static GgufValue From(ulong value) => new(GgufValueType.UInt64, value);
    public static GgufValue From(GgufArray value) => new(GgufValueType.Array, value);

    public override string ToString() => Value.ToString() ?? "";
}

/// <summary>
/// A GGUF array: <see cref="Items"/> is a typed CLR array (string[], float[], int[], ..., or GgufArray[] when nested).
/// </summary>
public sealed record GgufArray(GgufValueType ElementType, Array Items)
{
    public int Count => Items.Length;

    public static GgufArray Of(params string[] items) => new(GgufValueType.String, items);
    public static GgufArray Of(params float[] items) => new(GgufValueType.Float32, items);
    public static GgufArray Of(params int[] items) => new(GgufValueType.Int32, items);

    public override string ToString() => $"{ElementType}[{Count}]";
}

/// <summary>One metadata key/value pair, in file order.</summary>
public sealed record GgufMetadataEntry(string Key, GgufValue Value);

/// <summary>
/// One entry of the tensor table. <see cref="Shape"/> is in ggml order (innermost dimension first);
/// <see cref="Offset"/> is relative to the start of the data section (<see cref="GgufFile.DataOffset"/>).
/// </summary>
public sealed record GgufTensorInfo(string Name, IReadOnlyList<long> Shape, GgmlType Type, long Offset, long ByteSize)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    public override string ToString() => $"{Name} [{string.Join(", ", Shape)}] {Type}";
}
