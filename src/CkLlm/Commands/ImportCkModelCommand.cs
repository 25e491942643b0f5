using System.Collections.ObjectModel;
using System.Management.Automation;
using CkLlm.Engine.Model;

namespace CkLlm.Commands;

/// <summary>Validates a GGUF model in managed code, loads it into llama.cpp, registers it and makes it current.</summary>
[Cmdlet(VerbsData.Import, "CkModel", DefaultParameterSetName = PathSet)]
[OutputType(typeof(LoadedModel))]
public sealed class ImportCkModelCommand : CkCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";
    private int _imported;

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string[] Path { get; set; } = [];

    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "FullName")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = [];

    [Parameter(Position = 1)]
    [ValidateNotNullOrEmpty]
    public string? Name { get; set; }

    [Parameter]
    [ValidateRange(0, 1 << 20)]
    public int ContextSize { get; set; }

    [Parameter]
    [ValidateRange(1, 1024)]
    public int Threads { get; set; }

    [Parameter]
    [ValidateRange(0, 10000)]
    public int GpuLayerCount { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[] Adapter { get; set; } = [];

    protected override void ProcessRecord()
    {
        foreach (var path in ResolvePaths()) Import(path);
        this.WriteNativeLog();
    }

    private void Import(string path)
    {
        if (Name is not null && _imported > 0)
        {
            WriteInputError(new ArgumentException($"-Name '{Name}' can only name one model; '{path}' was not imported."),
                "NameNeedsSingleModel", ErrorCategory.InvalidArgument, path);
            return;
        }
        var adapters = Adapter.Select(ResolvePath).ToArray();
        var options = new ModelLoadOptions
        {
            Name = Name,
            ContextSize = ContextSize > 0 ? ContextSize : null,
            Threads = MyInvocation.BoundParameters.ContainsKey(nameof(Threads)) ? Threads : null,
            GpuLayerCount = GpuLayerCount,
            Adapters = adapters,
        };
        WriteVerbose($"Validating and loading '{path}'.");
        TryEngine(() =>
        {
            var model = SessionHost.Session.ImportModel(path, options);
            _imported++;
            WriteVerbose($"Loaded '{model.Name}' in {model.LoadTime.TotalMilliseconds:N0} ms; it is now the current model.");
            WriteObject(model);
        }, path);
    }

    private IEnumerable<string> ResolvePaths()
    {
        if (ParameterSetName == LiteralPathSet)
        {
            foreach (var literal in LiteralPath) yield return ResolvePath(literal);
            yield break;
        }
        foreach (var pattern in Path)
        {
            if (!WildcardPattern.ContainsWildcardCharacters(pattern))
            {
                yield return ResolvePath(pattern);
                continue;
            }
            Collection<string>? resolved = null;
            try { resolved = SessionState.Path.GetResolvedProviderPathFromPSPath(pattern, out _); }
            catch (ItemNotFoundException e)
            {
                WriteInputError(e, "ModelFileNotFound", ErrorCategory.ObjectNotFound, pattern);
            }
            if (resolved is null) continue;
            if (resolved.Count == 0)
                WriteInputError(new FileNotFoundException($"No file matches '{pattern}'."), "ModelFileNotFound", ErrorCategory.ObjectNotFound, pattern);
            foreach (var file in resolved) yield return file;
        }
    }
}
