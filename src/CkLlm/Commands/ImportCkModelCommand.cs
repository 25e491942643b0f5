using System.Collections.ObjectModel;
using System.Management.Automation;
using CkLlm.Engine.Model;
using CkLlm.Engine.Remote;

namespace CkLlm.Commands;

/// <summary>
/// Validates a GGUF model in managed code, loads it into llama.cpp, registers it and makes it current; or, with
/// -Endpoint and -RemoteModel, connects a model an OpenAI-compatible server serves (vLLM, llama.cpp server, Ollama,
/// Azure OpenAI, another CkLlm) and registers that.
/// </summary>
[Cmdlet(VerbsData.Import, "CkModel", DefaultParameterSetName = PathSet)]
[OutputType(typeof(LoadedModel), typeof(RemoteChatModel))]
public sealed class ImportCkModelCommand : CkCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";
    private const string RemoteSet = "Remote";
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

    [Parameter(ParameterSetName = PathSet)]
    [Parameter(ParameterSetName = LiteralPathSet)]
    [ValidateRange(1, 1024)]
    public int Threads { get; set; }

    [Parameter(ParameterSetName = PathSet)]
    [Parameter(ParameterSetName = LiteralPathSet)]
    [ValidateRange(0, 10000)]
    public int GpuLayerCount { get; set; }

    [Parameter(ParameterSetName = PathSet)]
    [Parameter(ParameterSetName = LiteralPathSet)]
    [ValidateNotNullOrEmpty]
    public string[] Adapter { get; set; } = [];

    /// <summary>The OpenAI-compatible API's address (http://host:8080, or a path such as .../openai/v1).</summary>
    [Parameter(Mandatory = true, ParameterSetName = RemoteSet)]
    [ValidateNotNull]
    public Uri? Endpoint { get; set; }

    /// <summary>The server's model id.</summary>
    [Parameter(Mandatory = true, ParameterSetName = RemoteSet)]
    [ValidateNotNullOrEmpty]
    public string? RemoteModel { get; set; }

    /// <summary>The API key, sent as a bearer token; never shown, logged or written.</summary>
    [Parameter(ParameterSetName = RemoteSet)]
    [ValidateNotNull]
    public System.Security.SecureString? ApiKey { get; set; }

    /// <summary>Longest wait for one network operation (seconds).</summary>
    [Parameter(ParameterSetName = RemoteSet)]
    [ValidateRange(1, 3600)]
    public int TimeoutSec { get; set; } = 100;

    protected override void ProcessRecord()
    {
        if (ParameterSetName == RemoteSet)
        {
            ImportRemote();
            return;
        }
        foreach (var path in ResolvePaths()) Import(path);
        this.WriteNativeLog();
    }

    private void ImportRemote()
    {
        var endpoint = Endpoint!;
        WriteVerbose($"Connecting to '{endpoint.GetLeftPart(UriPartial.Path)}' for model '{RemoteModel}'{(ApiKey is null ? " without an API key" : " with an API key")}.");
        TryEngine(() =>
        {
            var model = RemoteChatModel.Connect(new RemoteModelOptions
            {
                Endpoint = endpoint,
                RemoteModel = RemoteModel!,
                Name = Name,
                ApiKey = ApiKey is null ? null : new System.Net.NetworkCredential(string.Empty, ApiKey).Password,
                ContextSize = ContextSize > 0 ? ContextSize : null,
                Timeout = TimeSpan.FromSeconds(TimeoutSec),
            }, Cancellation);
            SessionHost.Session.AddModel(model);
            WriteVerbose($"Connected '{model.Name}': context {model.ContextSize} tokens ({model.ContextSizeSource}), token counts by {model.TokenCounting}; it is now the current model.");
            if (model.ContextSizeSource == "default")
            {
                WriteWarning($"'{model.Endpoint}' does not report the context window of '{model.RemoteModel}'; assuming {model.ContextSize} tokens. " +
                    "Give -ContextSize so RAG fills the real window.");
            }
            WriteObject(ModelOutput.Describe(model));
        }, endpoint);
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
            WriteObject(ModelOutput.Describe(model));
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
