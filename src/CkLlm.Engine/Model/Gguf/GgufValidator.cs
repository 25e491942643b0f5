namespace CkLlm.Engine.Model.Gguf;

/// <summary>A GGUF file that must not reach llama.cpp; <see cref="Reason"/> says why, for the user.</summary>
public sealed class GgufFormatException : Exception
{
    public GgufFormatException(string path, string reason)
        : base($"'{path}' is not a usable GGUF model: {reason}") { Path = path; Reason = reason; }

    public string Path { get; }
    public string Reason { get; }
}

/// <summary>What a validated GGUF model file declares.</summary>
public sealed record GgufModelSummary(
    string Path,
    string Architecture,
    string? Name,
    long ParameterCount,
    int ContextLength,
    int VocabularySize,
    string? ChatTemplate,
    long FileSize)
{
    public bool HasChatTemplate => !string.IsNullOrEmpty(ChatTemplate);
}

/// <summary>
/// Validates a GGUF file in managed code before llama.cpp sees it: llama.cpp's asserts abort the whole process.
/// (Contract stub: the full header/metadata/tensor-table validation replaces this body.)
/// </summary>
public static class GgufValidator
{
    public static GgufModelSummary Validate(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Model file '{path}' does not exist.", path);
        using var stream = File.OpenRead(path);
        var reader = new BinaryReader(stream);
        if (stream.Length < 8 || reader.ReadUInt32() != GgufWriter.Magic) throw new GgufFormatException(path, "it does not start with the GGUF magic.");
        throw new NotImplementedException("GgufValidator is a contract stub.");
    }
}
