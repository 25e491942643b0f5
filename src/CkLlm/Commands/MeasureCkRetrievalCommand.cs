using System.Management.Automation;
using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Rag;

namespace CkLlm.Commands;

/// <summary>Scores retrieval on question/expected-source pairs: hit@1, hit@K and MRR@K per search mode.</summary>
[Cmdlet(VerbsDiagnostic.Measure, "CkRetrieval", DefaultParameterSetName = ObjectSet)]
[OutputType(typeof(RetrievalSummary), typeof(RetrievalRank))]
public sealed class MeasureCkRetrievalCommand : RetrievalCommandBase
{
    private const string ObjectSet = "Object";
    private const string PathSet = "Path";
    private readonly List<RetrievalCase> _cases = [];

    /// <summary>Objects with Question and ExpectedSource (Import-Csv rows, PSCustomObjects, hashtables).</summary>
    [Parameter(Mandatory = true, ValueFromPipeline = true, ParameterSetName = ObjectSet)]
    public PSObject[] InputObject { get; set; } = [];

    /// <summary>A CSV file with Question and ExpectedSource columns.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>Write the per-question ranks instead of the per-mode summaries.</summary>
    [Parameter]
    public SwitchParameter Detailed { get; set; }

    /// <summary>The modes to score side by side (default: all).</summary>
    [Parameter]
    [ValidateSet(typeof(SearchModeValues), IgnoreCase = true)]
    public string[] Mode { get; set; } = [.. RetrievalParameters.Modes];

    protected override void ProcessRecord()
    {
        if (ParameterSetName == PathSet)
        {
            ReadCsv();
            return;
        }
        foreach (var item in InputObject) AddCase(item, item);
    }

    protected override void EndProcessing()
    {
        if (_cases.Count == 0)
        {
            WriteInputError(new ArgumentException("No question/expected-source pairs were given."), "NoQuestions", ErrorCategory.InvalidArgument, null);
            return;
        }
        var retriever = OpenRetriever();
        var filter = ToDictionary(Filter);
        var modes = Mode.Select(RetrievalParameters.Canonical).Distinct().ToArray();
        var progress = new ProgressRecord(1, "Measure-CkRetrieval", "Searching");
        IReadOnlyList<RetrievalSummary> summaries = [];
        bool measured;
        try
        {
            measured = TryEngine(() => summaries = RetrievalMetrics.Evaluate(_cases, modes, Top, (question, mode, k) => retriever.SearchSources(question, mode, k, filter), Cancellation,
                (done, total) =>
                {
                    progress.PercentComplete = (int)(100L * done / total);
                    progress.StatusDescription = $"{done} of {total} searches";
                    WriteProgress(progress);
                }), retriever.KnowledgeBase.Directory);
        }
        finally
        {
            progress.RecordType = ProgressRecordType.Completed;
            WriteProgress(progress);
        }
        if (!measured) return;

        foreach (var summary in summaries)
        {
            if (Detailed)
                foreach (var rank in summary.Ranks) WriteObject(rank);
            else
                WriteObject(summary);
        }
    }

    private void ReadCsv()
    {
        string file;
        try { file = SessionState.Path.GetResolvedProviderPathFromPSPath(Path, out _).Single(); }
        catch (Exception e) when (e is ItemNotFoundException or System.Management.Automation.DriveNotFoundException or InvalidOperationException or ProviderNotFoundException)
        {
            ThrowInputError(new FileNotFoundException($"The CSV file '{Path}' was not found (or the path matches several files).", Path, e),
                "CsvNotFound", ErrorCategory.ObjectNotFound, Path);
            return;
        }
        // Import-Csv reads the file the way PowerShell users expect (quoting, header, encoding).
        var rows = InvokeCommand.InvokeScript(false, ScriptBlock.Create("param($p) Import-Csv -LiteralPath $p"), null, file);
        if (rows.Count == 0)
        {
            WriteInputError(new InvalidDataException($"'{file}' has no rows."), "EmptyCsv", ErrorCategory.InvalidData, file);
            return;
        }
        foreach (var row in rows) AddCase(row, file);
    }

    private void AddCase(PSObject item, object target)
    {
        var question = ReadProperty(item, "Question");
        var expected = ReadProperty(item, "ExpectedSource");
        if (string.IsNullOrWhiteSpace(question) || string.IsNullOrWhiteSpace(expected))
        {
            WriteInputError(
                new ArgumentException("Each item needs a Question and an ExpectedSource (e.g. a CSV with those two columns); this one is skipped."),
                "MissingQuestionOrExpectedSource", ErrorCategory.InvalidData, target);
            return;
        }
        _cases.Add(RetrievalCase.Create(question, expected));
    }
}
