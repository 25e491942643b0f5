using System.Collections;
using System.Diagnostics;
using System.Management.Automation;
using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Knowledge.Ingestion;

namespace CkLlm.Commands;

/// <summary>
/// Adds files, text or records to a knowledge base: reads, chunks by embedder tokens, embeds and stores them.
/// Unchanged sources are skipped; changed ones replaced. Ctrl+C stops between batches, keeping what was committed.
/// </summary>
[Cmdlet(VerbsCommon.Add, "CkKnowledge", SupportsShouldProcess = true, DefaultParameterSetName = PathSet)]
[OutputType(typeof(IngestResult))]
public sealed class AddCkKnowledgeCommand : KnowledgeCommandBase
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";
    private const string TextSet = "Text";
    private const string InputObjectSet = "InputObject";

    private readonly List<KnowledgeRecord> _records = [];
    private readonly HashSet<string> _seenFiles = new(StringComparer.Ordinal);
    private KnowledgeBase? _kb;
    private Stopwatch? _watch;
    private int _files;
    private int _chunks;
    private int _textIndex;

    /// <summary>Files or directories (wildcards). No FullName alias: that would send "b [1].md" through wildcard
    /// expansion and silently drop it; Get-ChildItem output binds -LiteralPath instead.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = [];

    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "FullName", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = [];

    [Parameter(Mandatory = true, ParameterSetName = TextSet)]
    [AllowEmptyString]
    public string[] Text { get; set; } = [];

    /// <summary>Records (Import-Csv rows, ConvertFrom-Json objects): one chunk each.</summary>
    [Parameter(Mandatory = true, ParameterSetName = InputObjectSet, ValueFromPipeline = true)]
    public PSObject? InputObject { get; set; }

    /// <summary>Properties whose values are the record's text; the others become metadata. Default: all, as "Name: value".</summary>
    [Parameter(ParameterSetName = InputObjectSet)]
    [ValidateNotNullOrEmpty]
    public string[]? TextProperty { get; set; }

    /// <summary>Source name for -Text or -InputObject (default: derived from the content hash).</summary>
    [Parameter(ParameterSetName = TextSet)]
    [Parameter(ParameterSetName = InputObjectSet)]
    [ValidateNotNullOrEmpty]
    public string? Source { get; set; }

    [Parameter]
    public Hashtable? Metadata { get; set; }

    /// <summary>Path to a GGUF embedding model (default: what the knowledge base was built with, or -Embedder's default);
    /// with -EmbeddingEndpoint, the server's embedding model id.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? EmbeddingModel { get; set; }

    /// <summary>An OpenAI-compatible API (".../v1", or a bare server address) whose /v1/embeddings embeds the chunks,
    /// with the model -EmbeddingModel names. The knowledge base records the endpoint, model id and vector length.</summary>
    [Parameter]
    [ValidateNotNull]
    public Uri? EmbeddingEndpoint { get; set; }

    /// <summary>The key for -EmbeddingEndpoint, sent as a bearer token; kept in this process's memory for later commands
    /// on that endpoint (Search-CkKnowledge, Invoke-CkRag), never written. Else $env:CKLLM_EMBEDDING_API_KEY.</summary>
    [Parameter]
    [ValidateNotNull]
    public System.Security.SecureString? EmbeddingApiKey { get; set; }

    /// <summary>A built-in embedder by name (MiniLM, ArcticXs) for a new knowledge base; an existing one must name the
    /// embedder it was built with (or nothing).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(EmbedderNameCompleter))]
    public string? Embedder { get; set; }

    [Parameter]
    [ValidateRange(8, 8192)]
    public int ChunkSize { get; set; } = new KnowledgeBaseOptions().ChunkSize;

    [Parameter]
    [ValidateRange(0, 4096)]
    public int ChunkOverlap { get; set; } = new KnowledgeBaseOptions().ChunkOverlap;

    /// <summary>Directories: include subdirectories.</summary>
    [Parameter(ParameterSetName = PathSet)]
    [Parameter(ParameterSetName = LiteralPathSet)]
    public SwitchParameter Recurse { get; set; }

    /// <summary>After adding, remove file sources whose files no longer exist.</summary>
    [Parameter]
    public SwitchParameter Prune { get; set; }

    /// <summary>Re-embed files even when their content is unchanged; include hidden files and folders of a directory;
    /// let -Prune remove more than half of the sources.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Files larger than this many bytes are skipped with a warning (0: no limit).</summary>
    [Parameter]
    [ValidateRange(0, long.MaxValue)]
    public long MaxFileSize { get; set; } = DocumentFile.DefaultMaxFileSize;

    protected override bool CreatesKnowledgeBase => true;

    protected override void BeginProcessing()
    {
        if (ChunkOverlap >= ChunkSize)
        {
            ThrowInputError(new ArgumentException($"ChunkOverlap ({ChunkOverlap}) must be smaller than ChunkSize ({ChunkSize})."),
                "InvalidChunkOverlap", ErrorCategory.InvalidArgument, ChunkOverlap);
        }
        if (EmbeddingApiKey is not null && EmbeddingEndpoint is null)
        {
            ThrowInputError(new ArgumentException("-EmbeddingApiKey goes with -EmbeddingEndpoint (the key is only ever sent to the endpoint named with it)."),
                "EmbeddingApiKeyWithoutEndpoint", ErrorCategory.InvalidArgument, null);
        }
        if (EmbeddingModel is not null && Embedder is not null)
        {
            ThrowInputError(new ArgumentException("Use either -Embedder or -EmbeddingModel, not both."), "EmbedderConflict", ErrorCategory.InvalidArgument, Embedder);
        }
        var (model, embedder) = EmbeddingEndpoint is null
            ? (EmbeddingModel is null ? null : ResolvePath(EmbeddingModel), Embedder)
            : (null, RemoteEmbedderLocator());
        _kb = OpenKnowledgeBase(new KnowledgeBaseOptions { EmbeddingModel = model, Embedder = embedder, ChunkSize = ChunkSize, ChunkOverlap = ChunkOverlap });
        _watch = Stopwatch.StartNew();
    }

    /// <summary>The remote embedder -EmbeddingEndpoint and -EmbeddingModel name; remembers -EmbeddingApiKey for the endpoint.</summary>
    private string RemoteEmbedderLocator()
    {
        if (Embedder is not null)
            ThrowInputError(new ArgumentException("Use either -Embedder or -EmbeddingEndpoint, not both."), "EmbedderConflict", ErrorCategory.InvalidArgument, Embedder);
        if (EmbeddingModel is null)
            ThrowInputError(new ArgumentException("-EmbeddingEndpoint needs -EmbeddingModel: the id of the embedding model the server serves."),
                "EmbeddingModelMissing", ErrorCategory.InvalidArgument, EmbeddingEndpoint);
        if (!EmbeddingEndpoint!.IsAbsoluteUri || EmbeddingEndpoint.Scheme is not ("http" or "https") || EmbeddingEndpoint.UserInfo.Length > 0)
            ThrowInputError(new ArgumentException($"-EmbeddingEndpoint must be an absolute http or https address without credentials (the key goes in -EmbeddingApiKey), not '{EmbeddingEndpoint}'."),
                "InvalidEmbeddingEndpoint", ErrorCategory.InvalidArgument, EmbeddingEndpoint);
        if (EmbeddingApiKey is not null)
            Engine.Knowledge.Embedding.RemoteEmbedder.RememberKey(EmbeddingEndpoint, new System.Net.NetworkCredential(string.Empty, EmbeddingApiKey).Password);
        return Engine.Knowledge.Embedding.RemoteEmbedder.LocatorFor(EmbeddingEndpoint, EmbeddingModel!);
    }

    protected override void ProcessRecord()
    {
        switch (ParameterSetName)
        {
            case PathSet:
                foreach (var p in Path) AddResolved(p, literal: false);
                break;
            case LiteralPathSet:
                foreach (var p in LiteralPath) AddResolved(p, literal: true);
                break;
            case TextSet:
                foreach (var t in Text)
                {
                    var name = Source is null ? null : Text.Length > 1 ? $"{Source}#{++_textIndex}" : Source;
                    if (string.IsNullOrWhiteSpace(t)) continue;
                    if (!ShouldProcess(name ?? "text", $"Add to knowledge base {_kb!.Directory}")) continue;
                    Run(name ?? "text", () => _kb!.AddText(t, name, ToDictionary(Metadata), Progress(), Cancellation));
                }
                break;
            case InputObjectSet:
                CollectRecord(InputObject);
                break;
        }
    }

    protected override void EndProcessing()
    {
        if (_records.Count > 0)
        {
            var name = Source ?? "records";
            if (ShouldProcess($"{_records.Count} records as '{name}'", $"Add to knowledge base {_kb!.Directory}"))
            {
                Run(name, () => Source is null
                    ? _kb!.AddRecords(_records, DefaultRecordsSource(), ToDictionary(Metadata), Progress(), Cancellation)
                    : _kb!.AddRecords(_records, Source, ToDictionary(Metadata), Progress(), Cancellation));
            }
        }
        if (Prune && _kb is not null) TryEngine(() => PruneMissingSources(_kb, Force), _kb.Directory);
        WriteProgress(new ProgressRecord(1, "Add-CkKnowledge", "Done") { RecordType = ProgressRecordType.Completed });
        Flush();
    }

    private void AddResolved(string path, bool literal)
    {
        List<string> files;
        try
        {
            files = ResolveFiles(path, literal);
        }
        catch (Exception ex) when (ex is ItemNotFoundException or System.Management.Automation.DriveNotFoundException or ProviderNotFoundException or IOException)
        {
            WriteInputError(ex, "PathNotFound", ErrorCategory.ObjectNotFound, path);
            return;
        }
        foreach (var file in files)
        {
            if (!_seenFiles.Add(file)) continue;
            if (!ShouldProcess(file, $"Add to knowledge base {_kb!.Directory}")) continue;
            Run(file, () => _kb!.AddFile(file, ToDictionary(Metadata), Progress(), Force, Cancellation, MaxFileSize));
        }
    }

    private List<string> ResolveFiles(string path, bool literal)
    {
        var roots = new List<string>();
        if (literal)
        {
            var resolved = ResolvePath(path);
            if (!File.Exists(resolved) && !Directory.Exists(resolved))
                throw new ItemNotFoundException($"Cannot find path '{resolved}' because it does not exist.");
            roots.Add(resolved);
        }
        else
        {
            roots.AddRange(GetResolvedProviderPathFromPSPath(path, out var provider));
            if (provider.Name != "FileSystem") throw new ProviderNotFoundException($"'{path}' is not a file system path.");
        }
        var files = new List<string>();
        foreach (var root in roots)
        {
            if (Directory.Exists(root)) files.AddRange(WalkDirectory(root));
            else files.Add(root);
        }
        return files;
    }

    /// <summary>
    /// The files of a directory (and with -Recurse its subdirectories), sorted. Skipped: hidden entries (a name starting
    /// with '.' or the Hidden attribute) unless -Force, '.git' always, the knowledge base's own directory, and linked
    /// directories (no loops). A directory that cannot be listed is a non-terminating error; the walk goes on.
    /// </summary>
    private List<string> WalkDirectory(string root)
    {
        var files = new List<string>();
        var pending = new Stack<string>();
        pending.Push(root);
        while (pending.Count > 0)
        {
            var directory = pending.Pop();
            List<FileSystemInfo> entries;
            try { entries = [.. new DirectoryInfo(directory).EnumerateFileSystemInfos()]; }
            catch (Exception ex) when (ex is UnauthorizedAccessException or IOException or System.Security.SecurityException)
            {
                WriteError(new ErrorRecord(ex, "DirectoryUnreadable", ErrorCategory.ReadError, directory));
                continue;
            }
            foreach (var entry in entries.OrderByDescending(e => e.Name, StringComparer.Ordinal))
            {
                if (entry.Name == ".git" || (!Force && IsHidden(entry))) continue;
                if (entry is DirectoryInfo sub)
                {
                    if (!Recurse || sub.LinkTarget is not null || IsKnowledgeBaseDirectory(sub.FullName)) continue;
                    pending.Push(sub.FullName);
                }
                else files.Add(entry.FullName);
            }
        }
        files.Sort(StringComparer.Ordinal);
        return files;
    }

    private static bool IsHidden(FileSystemInfo entry) =>
        entry.Name.StartsWith('.') || entry.Attributes.HasFlag(FileAttributes.Hidden);

    private bool IsKnowledgeBaseDirectory(string directory) =>
        string.Equals(System.IO.Path.TrimEndingDirectorySeparator(directory), System.IO.Path.TrimEndingDirectorySeparator(_kb!.Directory), StringComparison.Ordinal)
        || File.Exists(System.IO.Path.Combine(directory, Engine.Knowledge.KnowledgeBase.DatabaseFileName));

    private void CollectRecord(PSObject? input)
    {
        if (input is null) return;
        if (input.BaseObject is FileSystemInfo fsi)
        {
            // A file that ended up here (e.g. through -InputObject) is still a file.
            AddResolved(fsi.FullName, literal: true);
            return;
        }
        var fields = new List<KeyValuePair<string, string?>>();
        if (input.BaseObject is IDictionary dict)
        {
            foreach (DictionaryEntry e in dict) fields.Add(new(e.Key.ToString()!, Render(e.Value)));
        }
        else if (input.BaseObject is string s)
        {
            fields.Add(new("Text", s));
        }
        else
        {
            foreach (var prop in input.Properties)
            {
                if (!prop.IsGettable) continue;
                object? value;
                try { value = prop.Value; } catch (GetValueException) { continue; }
                fields.Add(new(prop.Name, Render(value)));
            }
        }
        if (TextProperty is { Length: > 0 })
        {
            var missing = TextProperty.Where(tp => !fields.Any(f => string.Equals(f.Key, tp, StringComparison.OrdinalIgnoreCase))).ToList();
            if (missing.Count > 0)
            {
                WriteInputError(new ArgumentException($"The input object has no property '{string.Join("', '", missing)}' named by -TextProperty."),
                    "TextPropertyMissing", ErrorCategory.InvalidData, input);
                return;
            }
        }
        _records.Add(new KnowledgeRecord(fields) { TextFields = TextProperty });
    }

    private static string? Render(object? value)
    {
        if (value is null) return null;
        if (value is PSObject ps) value = ps.BaseObject;
        if (value is string s) return s;
        if (value is IEnumerable list and not IDictionary)
            return string.Join(", ", list.Cast<object?>().Select(o => LanguagePrimitives.ConvertTo<string>(o)));
        return LanguagePrimitives.ConvertTo<string>(value);
    }

    private string DefaultRecordsSource()
    {
        var first = _records[0].Fields.Select(f => f.Key).Take(3);
        return $"records:{string.Join(",", first)}:{_records.Count}";
    }

    /// <summary>Runs one source; a bad file is a non-terminating error and the pipeline goes on.</summary>
    private void Run(string target, Func<IngestResult> action)
    {
        try
        {
            var result = action();
            if (result.Warning is { } warning) WriteWarning(warning);
            _files++;
            if (result.Status != IngestStatus.Skipped) _chunks += result.Chunks;
            WriteObject(result);
        }
        catch (OperationCanceledException)
        {
            Flush();
            throw new PipelineStoppedException();
        }
        catch (DocumentTooLargeException ex)
        {
            WriteWarning(ex.Message);
        }
        catch (Exception ex) when (EngineErrors.Find(ex) is { } kind)
        {
            // A bad file is reported and the pipeline goes on; a knowledge-base failure ends it with what is committed saved.
            if (kind.Terminating) Flush();
            WriteEngineError(ex, target);
        }
    }

    // A nested class implementing IProgress<engine type> would make PowerShell's type scan load the engine before
    // the module's resolver is registered, so the engine supplies the synchronous reporter.
    private IProgress<IngestProgress> Progress() => new SynchronousProgress<IngestProgress>(ReportProgress);

    /// <summary>The engine reports synchronously on the pipeline thread, so WriteProgress is safe here.</summary>
    private void ReportProgress(IngestProgress value)
    {
        var seconds = Math.Max(0.001, _watch!.Elapsed.TotalSeconds);
        var chunks = _chunks + value.ChunksDone;
        WriteProgress(new ProgressRecord(1, "Add-CkKnowledge", $"{_files} sources done, {chunks} chunks embedded, {chunks / seconds:0.0} chunks/s")
        {
            CurrentOperation = $"{value.Source}: {value.ChunksDone}/{value.ChunksTotal} chunks",
            PercentComplete = value.ChunksTotal == 0 ? 100 : value.ChunksDone * 100 / value.ChunksTotal,
        });
    }

    private void Flush()
    {
        try { _kb?.Flush(); }
        catch (Exception ex) when (ex is IOException or KnowledgeBaseException) { WriteWarning("Saving the vector index failed (it will be rebuilt): " + ex.Message); }
    }
}

/// <summary>Tab completion of -Embedder from the engine's registry (called only when completing, after import).</summary>
public sealed class EmbedderNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        System.Management.Automation.Language.CommandAst commandAst, IDictionary fakeBoundParameters) =>
        Engine.Knowledge.Embedding.EmbedderRegistry.Names
            .Where(n => n.StartsWith(wordToComplete ?? "", StringComparison.OrdinalIgnoreCase))
            .Select(n => new CompletionResult(n));
}
