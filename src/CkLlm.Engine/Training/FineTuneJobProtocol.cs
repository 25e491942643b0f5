using System.Text.Json;
using System.Text.Json.Serialization;

namespace CkLlm.Engine.Training;

/// <summary>
/// The worker protocol: the job spec is a JSON <see cref="FineTuneOptions"/> file; the worker writes one JSON object
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

    public static void WriteSpec(string path, FineTuneOptions options) => File.WriteAllText(path, JsonSerializer.Serialize(options, Json));

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
