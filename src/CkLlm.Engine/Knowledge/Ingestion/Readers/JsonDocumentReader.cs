using System.Text.Json;

namespace CkLlm.Engine.Knowledge.Ingestion.Readers;

/// <summary>Json documents.</summary>
public sealed class JsonDocumentReader() : DocumentReaderBase("Json", true, ".json")
{
    public override IEnumerable<DocumentSection> Read(DocumentFile file, CancellationToken cancellationToken) => ReadJson(file.ReadAllText()).Sections;

    internal static ReadDocument ReadJson(string text)
    {
        using var json = JsonDocument.Parse(text, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        var sections = new List<DocumentSection>();
        IEnumerable<JsonElement> items = json.RootElement.ValueKind == JsonValueKind.Array
            ? json.RootElement.EnumerateArray()
            : [json.RootElement];
        int index = 0;
        foreach (var item in items)
        {
            index++;
            var fields = item.ValueKind == JsonValueKind.Object
                ? item.EnumerateObject().Select(p => new KeyValuePair<string, string?>(p.Name, JsonScalar(p.Value))).ToList()
                : [new KeyValuePair<string, string?>("Value", JsonScalar(item))];
            sections.Add(RecordRenderer.ToSection(new KnowledgeRecord(fields), index, null));
        }
        return new ReadDocument("Json", sections);
    }

    private static string? JsonScalar(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => value.GetString(),
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        _ => value.GetRawText(),
    };

}
