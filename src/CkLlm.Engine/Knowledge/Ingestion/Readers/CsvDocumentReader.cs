namespace CkLlm.Engine.Knowledge.Ingestion.Readers;

/// <summary>CSV (or TSV with a tab separator): one record section per row, the header row naming the fields.</summary>
public sealed class CsvDocumentReader(string separator, string extension) : DocumentReaderBase("Csv", true, extension)
{
    public override IEnumerable<DocumentSection> Read(DocumentFile file, CancellationToken cancellationToken) => ReadCsv(file.ReadAllText(), separator[0]).Sections;

    internal static ReadDocument ReadCsv(string text, char separator)
    {
        var rows = CsvParser.Parse(text, separator);
        if (rows.Count == 0) return new ReadDocument("Csv", []);
        var header = rows[0].Fields;
        var sections = new List<DocumentSection>();
        for (int r = 1; r < rows.Count; r++)
        {
            var row = rows[r];
            if (row.Fields.All(string.IsNullOrWhiteSpace)) continue;
            var fields = new List<KeyValuePair<string, string?>>();
            for (int c = 0; c < header.Count; c++)
                fields.Add(new(header[c], c < row.Fields.Count ? row.Fields[c] : null));
            sections.Add(RecordRenderer.ToSection(new KnowledgeRecord(fields), r, row.Line));
        }
        return new ReadDocument("Csv", sections);
    }
}
