using System.Collections;
using System.Management.Automation;
using System.Text.Json;

namespace CkLlm;

/// <summary>JSON to PowerShell objects the way ConvertFrom-Json shapes them (PSCustomObject, object[], long/double).</summary>
internal static class JsonPSObject
{
    /// <exception cref="JsonException">The text is not valid JSON.</exception>
    public static object? Parse(string json)
    {
        using var document = JsonDocument.Parse(json);
        return Convert(document.RootElement);
    }

    private static object? Convert(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Object => ToPSObject(element),
        JsonValueKind.Array => element.EnumerateArray().Select(Convert).ToArray(),
        JsonValueKind.String => element.GetString(),
        // Boxed separately: a conditional of long and double would widen every integer to double.
        JsonValueKind.Number => element.TryGetInt64(out var whole) ? (object)whole : element.GetDouble(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => null,
    };

    private static PSObject ToPSObject(JsonElement element)
    {
        var result = new PSObject();
        foreach (var property in element.EnumerateObject())
        {
            // Last duplicate wins, like ConvertFrom-Json -AsHashtable.
            result.Properties.Remove(property.Name);
            result.Properties.Add(new PSNoteProperty(property.Name, Convert(property.Value)));
        }
        return result;
    }

    /// <summary>A JSON schema given as a string, hashtable or object, as JSON text.</summary>
    public static string ToJsonText(object value)
    {
        var plain = ToPlain(value is PSObject ps ? ps.BaseObject : value);
        return plain as string ?? JsonSerializer.Serialize(plain);
    }

    private static object? ToPlain(object? value)
    {
        switch (value)
        {
            case null: return null;
            case PSObject ps when ps.BaseObject is PSCustomObject:
                return ps.Properties.ToDictionary(p => p.Name, p => ToPlain(p.Value));
            case PSObject ps: return ToPlain(ps.BaseObject);
            case string or bool or int or long or double or decimal or float: return value;
            case IDictionary dictionary:
                var map = new Dictionary<string, object?>();
                foreach (DictionaryEntry entry in dictionary) map[entry.Key.ToString()!] = ToPlain(entry.Value);
                return map;
            case IEnumerable items: return items.Cast<object?>().Select(ToPlain).ToArray();
            default: return value.ToString();
        }
    }
}
