using System.Management.Automation;
using CkLlm.Engine.Training;

namespace CkLlm.Commands;

/// <summary>Perplexity of a text under a model (optionally with a LoRA adapter), computed by llama.cpp itself.</summary>
[Cmdlet(VerbsDiagnostic.Measure, "CkPerplexity", DefaultParameterSetName = PathSet)]
[OutputType("CkLlm.Engine.Training.PerplexityResult")]
public sealed class MeasureCkPerplexityCommand : CkCmdlet
{
    private const string PathSet = "Path", TextSet = "Text";
    private readonly List<string> _texts = new();

    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Model { get; set; } = "";

    [Parameter] public string? Adapter { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = PathSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "FullName")]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = [];

    [Parameter(Mandatory = true, ParameterSetName = TextSet, ValueFromPipeline = true)]
    [ValidateNotNullOrEmpty]
    public string[] Text { get; set; } = [];

    [Parameter] [ValidateRange(0, 32768)] public int ContextLength { get; set; }

    protected override void ProcessRecord()
    {
        if (ParameterSetName == TextSet) { _texts.AddRange(Text); return; }
        foreach (var pattern in Path)
            foreach (var file in GetResolvedProviderPathFromPSPath(pattern, out _))
                _texts.Add(File.ReadAllText(file));
    }

    protected override void EndProcessing() => Run();

    private void Run()
    {
        var model = ResolvePath(Model);
        var adapter = Adapter is null ? null : ResolvePath(Adapter);
        foreach (var (path, kind) in new[] { (model, "Model"), (adapter, "Adapter") })
            if (path is not null && !File.Exists(path))
                ThrowInputError(new FileNotFoundException($"{kind} file '{path}' does not exist.", path),
                    $"CkPerplexity.{kind}NotFound", ErrorCategory.ObjectNotFound, path);
        if (ContextLength == 1)
            ThrowInputError(new ArgumentOutOfRangeException(nameof(ContextLength), "The context length must be at least 2."),
                "CkPerplexity.ContextLength", ErrorCategory.InvalidArgument, ContextLength);
        try
        {
            TryEngine(() => WriteObject(LlamaCppEvaluator.MeasurePerplexity(model, adapter, string.Join("\n", _texts), ContextLength, Cancellation)), model);
        }
        finally { this.WriteNativeLog(); }
    }
}
