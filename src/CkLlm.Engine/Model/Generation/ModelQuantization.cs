using LLama.Native;

namespace CkLlm.Engine.Model.Generation;

/// <summary>
/// The llama.cpp file types (llama-quantize's names) a model can be written in, checked in managed code before
/// llama.cpp sees them. Why not LLamaSharp's string overload: it matches any substring of its enum names, so "F16" is
/// ambiguous with BF16 and "Q4_K" with Q4_K_S/Q4_K_M. The very-low-bit types (IQ1/IQ2, Q2_K_S) are left out because
/// llama.cpp refuses them without an importance matrix; BF16 because LLamaSharp 0.30's quantizer refuses it.
/// </summary>
public static class ModelQuantization
{
    /// <summary>The generator's own type: nothing to quantize.</summary>
    public const string Unquantized = "F32";

    /// <summary>Every accepted name, most precise first.</summary>
    public static IReadOnlyList<string> Names { get; } =
    [
        "F32", "F16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1", "Q4_0",
        "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K", "IQ4_XS", "IQ4_NL",
    ];

    /// <summary>The accepted spelling of <paramref name="name"/> (any case), or false.</summary>
    public static bool TryNormalize(string? name, out string canonical)
    {
        canonical = Names.FirstOrDefault(n => string.Equals(n, name?.Trim(), StringComparison.OrdinalIgnoreCase)) ?? "";
        return canonical.Length > 0;
    }

    /// <summary>The accepted spelling of <paramref name="name"/>; an <see cref="ArgumentException"/> naming every accepted one otherwise.</summary>
    public static string Normalize(string? name) => TryNormalize(name, out var canonical)
        ? canonical
        : throw new ArgumentException($"'{name}' is not a quantization llama.cpp can write without an importance matrix. Use one of: {string.Join(", ", Names)}.", nameof(name));

    /// <summary>llama.cpp's file type for an accepted name (general.file_type of the written file).</summary>
    internal static LLamaFtype FileTypeOf(string name)
    {
        var canonical = Normalize(name);
        return canonical == Unquantized ? LLamaFtype.ALL_F32 : Enum.Parse<LLamaFtype>("MOSTLY_" + canonical);
    }

    /// <summary>
    /// Writes a model file through temporary files beside it: <paramref name="writeF32"/> writes the F32 model to the
    /// path it is given, llama.cpp quantizes that to <paramref name="quantization"/> (null: kept as written), and the
    /// result is renamed into place. A failure, or a cancellation seen once llama.cpp returns, leaves neither behind.
    /// </summary>
    public static void WriteModelFile(string path, string? quantization, Action<string> writeF32, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(writeF32);
        var full = Path.GetFullPath(path);
        var temp = full + ".tmp-" + Environment.ProcessId;
        var unquantized = quantization is null ? temp : temp + ".f32";
        try
        {
            writeF32(unquantized);
            if (quantization is not null) Quantize(unquantized, temp, quantization);
            cancellationToken.ThrowIfCancellationRequested();
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
            if (File.Exists(unquantized)) File.Delete(unquantized);
        }
    }

    /// <summary>
    /// Writes <paramref name="source"/> quantized to <paramref name="name"/> at <paramref name="destination"/> with
    /// llama.cpp's quantizer, the output matrix included (as published GGUFs have it; LLamaSharp's default leaves it
    /// unquantized). Matrices whose rows do not divide into the type's blocks (K-quants need multiples of 256) get
    /// llama.cpp's fallback type.
    /// </summary>
    public static void Quantize(string source, string destination, string name, int threads = 0)
    {
        var fileType = FileTypeOf(name);
        NativeBackend.EnsureInitialized();
        if (!LLama.LLamaQuantizer.Quantize(source, destination, fileType, threads > 0 ? threads : Environment.ProcessorCount,
                allowRequantize: true, quantizeOutputTensor: true))
            throw new IOException($"llama.cpp could not quantize '{source}' to {Normalize(name)} (its log is on the Verbose stream).");
    }
}
