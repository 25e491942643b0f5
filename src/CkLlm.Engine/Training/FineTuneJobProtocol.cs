using System.Text.Json;
using System.Text.Json.Serialization;

namespace CkLlm.Engine.Training;

/// <summary>
/// The worker protocol: the job spec is a private JSON <see cref="FineTuneOptions"/> file; the worker writes one JSON object
/// per line on stdout (<see cref="FineTuneMessage"/>) and stops gracefully (checkpoint kept) when it reads "stop" on
/// stdin or stdin closes.
/// </summary>
public static class FineTuneJobProtocol
{
    public static JsonSerializerOptions Json { get; } = new()
    {
        Converters = { new JsonStringEnumConverter() },
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public const string StopCommand = "stop";

    public static string Serialize(FineTuneMessage message) => JsonSerializer.Serialize(message, Json);

    public static FineTuneMessage? Deserialize(string line)
    {
        try { return JsonSerializer.Deserialize<FineTuneMessage>(line, Json); }
        catch (JsonException) { return null; }
    }

    private const UnixFileMode OwnerOnlyDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode OwnerOnlyFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>
    /// Writes the job spec (it holds all training text) to a new private directory under the temp folder: the
    /// directory is mode 0700 and the file 0600 from the moment they exist, so no other user can read it even
    /// while it is written. Returns the spec's path; remove it with <see cref="DeleteSpec"/>.
    /// </summary>
    public static string WritePrivateSpec(FineTuneOptions options)
    {
        var directory = Path.Combine(Path.GetTempPath(), $"ckllm-finetune-{Guid.NewGuid():N}");
        if (OperatingSystem.IsWindows()) Directory.CreateDirectory(directory); // per-user temp folder already
        else Directory.CreateDirectory(directory, OwnerOnlyDirectory);
        var path = Path.Combine(directory, "job.json");
        try
        {
            var file = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows()) file.UnixCreateMode = OwnerOnlyFile;
            using var stream = new FileStream(path, file);
            JsonSerializer.Serialize(stream, options, Json);
            return path;
        }
        catch
        {
            DeleteSpec(path);
            throw;
        }
    }

    /// <summary>Deletes a spec written by <see cref="WritePrivateSpec"/> and its private directory; missing is fine.</summary>
    public static void DeleteSpec(string path)
    {
        try { File.Delete(path); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        var directory = Path.GetDirectoryName(path);
        if (directory is null || !Path.GetFileName(directory).StartsWith("ckllm-finetune-", StringComparison.Ordinal)) return;
        try { Directory.Delete(directory, recursive: true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    public static FineTuneOptions ReadSpec(string path) =>
        JsonSerializer.Deserialize<FineTuneOptions>(File.ReadAllText(path), Json)
        ?? throw new InvalidDataException($"The job spec '{path}' is empty.");
}

/// <summary>One line of worker output: Type is "progress", "result", "error" or "cancelled".</summary>
public sealed record FineTuneMessage(
    string Type,
    FineTuneProgress? Progress = null,
    FineTuneResult? Result = null,
    string? Error = null,
    string? ErrorKind = null);
