using System.Text.Json;
using System.Text.Json.Serialization;

namespace CkLlm.Engine.Chat;

/// <summary>Reads and writes chat transcripts as JSON (Export-CkChat / Import-CkChat).</summary>
public static class ChatTranscriptFile
{
    private static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        PropertyNameCaseInsensitive = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter() },
    };

    public static string ToJson(ChatTranscript transcript)
    {
        ArgumentNullException.ThrowIfNull(transcript);
        return JsonSerializer.Serialize(transcript, Options);
    }

    /// <exception cref="InvalidDataException">The text is not a chat transcript.</exception>
    public static ChatTranscript FromJson(string json, string? source = null)
    {
        ArgumentNullException.ThrowIfNull(json);
        var where = source is null ? "" : $" in '{source}'";
        ChatTranscript? transcript;
        try { transcript = JsonSerializer.Deserialize<ChatTranscript>(json, Options); }
        catch (JsonException e) { throw new InvalidDataException($"Not a CkLlm chat transcript{where}: {e.Message}", e); }
        if (transcript is null) throw new InvalidDataException($"Not a CkLlm chat transcript{where}: the JSON is null.");
        if (transcript.Format != ChatTranscript.CurrentFormat)
            throw new InvalidDataException($"Not a CkLlm chat transcript{where} (format '{transcript.Format}', expected '{ChatTranscript.CurrentFormat}').");
        return transcript;
    }

    /// <summary>Writes the transcript to <paramref name="path"/> (through a temporary file, so a failure leaves no half file).</summary>
    public static void Save(ChatTranscript transcript, string path)
    {
        var json = ToJson(transcript);
        var temporary = path + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        File.WriteAllText(temporary, json);
        try { File.Move(temporary, path, overwrite: true); }
        catch
        {
            File.Delete(temporary);
            throw;
        }
    }

    public static ChatTranscript Load(string path) => FromJson(File.ReadAllText(path), path);
}
