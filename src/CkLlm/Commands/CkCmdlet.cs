using System.Collections;
using System.Management.Automation;
using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Inference;

namespace CkLlm.Commands;

/// <summary>
/// The base of every CkLlm cmdlet: cancellation from the pipeline (Ctrl+C), engine exceptions reported through one
/// table (<see cref="EngineErrors"/>), model and knowledge-base resolution, reading properties of piped objects,
/// wildcard name matching, and streamed text the caller can capture.
/// </summary>
/// <remarks>No field or parameter of an engine type here or in a derived class: PowerShell reflects over them during
/// Import-Module, before the engine's load context is wired up. Engine types in method signatures are fine.</remarks>
public abstract class CkCmdlet : PSCmdlet, IDisposable
{
    // object, not KnowledgeBase: no engine types in fields (see the remarks above).
    private readonly List<IDisposable> _leases = [];
    private readonly HashSet<object> _leased = new(ReferenceEqualityComparer.Instance);

    /// <summary>Cancelled when the pipeline stops (Ctrl+C, Select-Object -First, a terminating error downstream).</summary>
    protected CancellationToken Cancellation => PipelineStopToken;

    /// <summary>Reports an engine exception as the table says: a terminating error or a non-terminating one.</summary>
    /// <exception cref="Exception">Rethrows <paramref name="error"/> when it is not an engine failure.</exception>
    protected void WriteEngineError(Exception error, object? target)
    {
        var kind = EngineErrors.Find(error);
        if (kind is null) throw error;
        var record = EngineErrors.ToErrorRecord(error, target, kind);
        if (kind.Terminating) ThrowTerminatingError(record);
        else WriteError(record);
    }

    /// <summary>Runs engine work; an engine failure is reported (see <see cref="WriteEngineError"/>) and false returned;
    /// cancellation by Ctrl+C ends quietly with false.</summary>
    protected bool TryEngine(Action action, object? target)
    {
        ArgumentNullException.ThrowIfNull(action);
        try
        {
            action();
            return true;
        }
        catch (OperationCanceledException) when (Cancellation.IsCancellationRequested)
        {
            return false;
        }
        catch (Exception e) when (EngineErrors.IsEngineError(e))
        {
            WriteEngineError(e, target);
            return false;
        }
    }

    /// <summary>A non-terminating error of the cmdlet's own (bad input found before the engine was asked).</summary>
    protected void WriteInputError(Exception error, string errorId, ErrorCategory category, object? target) =>
        WriteError(new ErrorRecord(error, errorId, category, target));

    /// <summary>A terminating error of the cmdlet's own.</summary>
    protected void ThrowInputError(Exception error, string errorId, ErrorCategory category, object? target) =>
        ThrowTerminatingError(new ErrorRecord(error, errorId, category, target));

    /// <summary>A PowerShell path (relative, ~, PSDrive) as a file-system path; the file need not exist.</summary>
    protected string ResolvePath(string path) => SessionState.Path.GetUnresolvedProviderPathFromPSPath(path);

    /// <summary>
    /// The model named by a -Model argument (a name or an object from Import-CkModel/Get-CkModel), or the current
    /// model when null. Writes the error and returns null when there is none.
    /// </summary>
    protected IChatModel? ResolveModel(object? model)
    {
        IChatModel? resolved = null;
        TryEngine(() =>
        {
            var value = model is PSObject ps ? ps.BaseObject : model;
            resolved = value switch
            {
                null => SessionHost.Session.GetModel(),
                IChatModel chatModel => chatModel,
                string name => SessionHost.Session.GetModel(name),
                _ => throw new ArgumentException($"-Model takes a model name or a model object, not {value.GetType().Name}."),
            };
        }, model);
        return resolved;
    }

    /// <summary>
    /// Opens the knowledge base in <paramref name="directory"/> (a PowerShell path; null: the session's current one)
    /// and holds it open until the command ends, so another runspace cannot close it mid-search.
    /// Failing to open is terminating: nothing in the command can work without it. With <paramref name="mustExist"/>
    /// a path without a knowledge base is a KnowledgeBaseNotFound error and nothing is created.
    /// </summary>
    protected KnowledgeBase OpenKnowledgeBase(string? directory, KnowledgeBaseOptions? options = null, bool mustExist = false)
    {
        // A postgresql:// URI is a server knowledge base, not a PowerShell path.
        var path = directory is null ? null : KnowledgeLocation.IsServer(directory) ? directory : ResolvePath(directory);
        try
        {
            var lease = SessionHost.Session.LeaseKnowledgeBase(path, options, mustExist);
            if (_leased.Add(lease.KnowledgeBase)) _leases.Add(lease);
            else lease.Dispose(); // this command already holds it
            return lease.KnowledgeBase;
        }
        catch (KnowledgeBaseNotFoundException e)
        {
            ThrowTerminatingError(EngineErrors.ToErrorRecord(e, e.Directory));
            throw; // unreachable: ThrowTerminatingError always throws
        }
        catch (Exception e) when (EngineErrors.IsEngineError(e))
        {
            ThrowTerminatingError(EngineErrors.ToErrorRecord(e, path is null ? SessionHost.Session.CurrentKnowledgeBase : KnowledgeLocation.WithoutPassword(path)));
            throw; // unreachable: ThrowTerminatingError always throws
        }
    }

    /// <summary>
    /// The reranker a -Rerank argument names: a loaded chat model's name (pointwise judge) or a GGUF reranker file
    /// (a PowerShell path); null when not given. A file that is not a reranker is a terminating NotAReranker error.
    /// </summary>
    protected Engine.Knowledge.Search.IReranker? ResolveReranker(string? rerank)
    {
        if (rerank is null) return null;
        try
        {
            return Engine.Knowledge.Search.RerankerRegistry.Resolve(rerank,
                name => SessionHost.Session.TryGetModel(name, out var model) ? model : null, ResolvePath(rerank));
        }
        catch (Exception e) when (EngineErrors.IsEngineError(e))
        {
            ThrowTerminatingError(EngineErrors.ToErrorRecord(e, rerank));
            throw; // unreachable: ThrowTerminatingError always throws
        }
    }

    /// <summary>
    /// A property of a piped object, by name (case-insensitive): a hashtable key, a PSCustomObject or .NET property,
    /// an Import-Csv column. Null when it has none.
    /// </summary>
    protected static string? ReadProperty(object? item, string name)
    {
        var value = item is PSObject ps ? ps.BaseObject : item;
        if (value is IDictionary dictionary)
        {
            foreach (DictionaryEntry entry in dictionary)
                if (string.Equals(entry.Key.ToString(), name, StringComparison.OrdinalIgnoreCase)) return entry.Value?.ToString();
            return null;
        }
        if (item is null) return null;
        return PSObject.AsPSObject(item).Properties[name]?.Value?.ToString();
    }

    /// <summary>@{ key = value } as the engine's string dictionary.</summary>
    protected static Dictionary<string, string>? ToDictionary(Hashtable? table)
    {
        if (table is null) return null;
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (DictionaryEntry e in table)
            result[e.Key.ToString()!] = e.Value is null ? "" : LanguagePrimitives.ConvertTo<string>(e.Value);
        return result;
    }

    /// <summary>
    /// The items whose name matches any of <paramref name="patterns"/> (wildcards, case-insensitive; an exact name also
    /// matches literally, so "b [1].md" finds itself), each once, in the items' order. A pattern without wildcards that
    /// matches nothing writes an ObjectNotFound error with <paramref name="errorId"/>, as Get-Item does.
    /// </summary>
    protected IReadOnlyList<T> MatchNames<T>(IEnumerable<string> patterns, IEnumerable<T> items, Func<T, string> nameOf,
        string errorId, string notFoundMessage)
    {
        ArgumentNullException.ThrowIfNull(patterns);
        ArgumentNullException.ThrowIfNull(nameOf);
        ArgumentNullException.ThrowIfNull(notFoundMessage);
        var candidates = items.ToList();
        var matched = new List<T>();
        foreach (var name in patterns)
        {
            var matches = candidates.Where(c => NameMatches(name, nameOf(c))).ToList();
            if (matches.Count == 0 && !WildcardPattern.ContainsWildcardCharacters(name))
            {
                WriteError(new ErrorRecord(new ItemNotFoundException(string.Format(System.Globalization.CultureInfo.InvariantCulture, notFoundMessage, name)),
                    errorId, ErrorCategory.ObjectNotFound, name));
            }
            foreach (var match in matches)
                if (!matched.Contains(match)) matched.Add(match);
        }
        return matched;
    }

    /// <summary>Whether <paramref name="name"/> matches <paramref name="pattern"/> (wildcards, case-insensitive) or equals it.</summary>
    protected static bool NameMatches(string pattern, string name) =>
        string.Equals(pattern, name, StringComparison.Ordinal) || new WildcardPattern(pattern, WildcardOptions.IgnoreCase).IsMatch(name);

    /// <summary>
    /// Streamed text goes to the information stream tagged PSHOST, like Write-Host: the console shows it as it arrives,
    /// and scripts capture it with 6>&amp;1 or -InformationVariable.
    /// </summary>
    protected void WriteStreamedText(string text)
    {
        if (text.Length == 0) return;
        WriteInformation(new HostInformationMessage { Message = text, NoNewLine = true }, ["PSHOST"]);
    }

    /// <summary>Ends a streamed answer with a line break.</summary>
    protected void EndStreamedText() => WriteInformation(new HostInformationMessage { Message = "" }, ["PSHOST"]);

    /// <summary>Releases the knowledge bases this command held open (PowerShell disposes a cmdlet when its pipeline ends).</summary>
    public void Dispose()
    {
        foreach (var lease in _leases) lease.Dispose();
        _leases.Clear();
        _leased.Clear();
        GC.SuppressFinalize(this);
    }
}
