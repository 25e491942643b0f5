namespace CkLlm.Engine.Tests.Knowledge;

/// <summary>A temp directory deleted after the test.</summary>
internal sealed class KnowledgeTestDirectory : IDisposable
{
    public KnowledgeTestDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "ckllm-kb-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Kb => System.IO.Path.Combine(Path, "kb");

    public string Write(string name, string content)
    {
        var file = System.IO.Path.Combine(Path, name);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(file)!);
        File.WriteAllText(file, content);
        return file;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}
