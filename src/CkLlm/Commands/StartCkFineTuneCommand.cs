using System.Collections;
using System.Management.Automation;
using CkLlm.Engine.Training;

namespace CkLlm.Commands;

/// <summary>
/// Fine-tunes a GGUF model (LoRA adapter or full) on documents or prompt/response records, in a worker process
/// returned as a PowerShell job; -Wait runs it in the foreground with a progress bar.
/// </summary>
[Cmdlet(VerbsLifecycle.Start, "CkFineTune", SupportsShouldProcess = true, DefaultParameterSetName = RecordSet)]
[OutputType(typeof(CkFineTuneJob))]
[OutputType("CkLlm.Engine.Training.FineTuneResult")]
public sealed class StartCkFineTuneCommand : CkCmdlet
{
    private const string PathSet = "Path", TextSet = "Text", RecordSet = "InputObject", KnowledgeSet = "KnowledgeBase";
    private readonly List<string> _texts = new();
    // Engine types stay out of this class's fields and parameters: PowerShell reflects over them on Import-Module,
    // before the engine's load context is wired up.
    private readonly List<(string Prompt, string Response)> _pairs = new();

    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Model { get; set; } = "";

    // No pipeline binding here: piped objects all go to -InputObject (the default set), which takes files too. With a
    // pipeline-bound -Path as the default set, PowerShell bound every piped record to it by string conversion.
    [Parameter(Mandatory = true, ParameterSetName = PathSet)]
    [Alias("PSPath", "FullName")]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = [];

    [Parameter(Mandatory = true, ParameterSetName = TextSet)]
    [ValidateNotNullOrEmpty]
    public string[] Text { get; set; } = [];

    /// <summary>A knowledge base directory: every source in it becomes a training document.</summary>
    [Parameter(Mandatory = true, ParameterSetName = KnowledgeSet)]
    [ValidateNotNullOrEmpty]
    public string KnowledgeBase { get; set; } = "";

    /// <summary>Records with Prompt and Response properties (hashtables or objects), or files (Get-ChildItem output).</summary>
    [Parameter(Mandatory = true, ParameterSetName = RecordSet, ValueFromPipeline = true)]
    public PSObject[] InputObject { get; set; } = [];

    [Parameter(Mandatory = true)]
    [ValidateNotNullOrEmpty]
    public string OutputPath { get; set; } = "";

    [Parameter] [ValidateSet("Lora", "Full")] public string Method { get; set; } = "Lora";
    [Parameter] [ValidateRange(1, 1024)] public int Rank { get; set; } = 8;
    [Parameter] [ValidateRange(0.001, 100000)] public float Alpha { get; set; } = 16;
    [Parameter] public string[]? LoraTarget { get; set; }
    [Parameter] [ValidateRange(0.0, 1.0)] public float LearningRate { get; set; }
    [Parameter] [ValidateSet("Cosine", "Linear", "Constant")] public string Schedule { get; set; } = "Cosine";
    /// <summary>Passes over the data; not given: the automatic step budget decides (with plateau stopping).</summary>
    [Parameter] [ValidateRange(1, 100000)] public int Epochs { get; set; }
    [Parameter] [ValidateRange(1, 10000000)] public int MaxSteps { get; set; }
    [Parameter] [ValidateRange(1, 4096)] public int AccumulationSteps { get; set; } = 1;
    [Parameter] [ValidateRange(2, 32768)] public int ContextLength { get; set; } = 128;
    [Parameter] [ValidateRange(1, 4096)] public int BatchSize { get; set; } = 4;
    [Parameter] [ValidateRange(0.0, 0.9)] public double ValidationSplit { get; set; }
    [Parameter] [ValidateRange(0, 1000)] public int EarlyStoppingPatience { get; set; }
    [Parameter] public string? CheckpointPath { get; set; }
    [Parameter] public SwitchParameter Resume { get; set; }
    [Parameter] public SwitchParameter Merge { get; set; }
    [Parameter] [ArgumentCompleter(typeof(QuantizationNameCompleter))] public string? Quantization { get; set; }
    [Parameter] public SwitchParameter SkipPerplexity { get; set; }
    [Parameter] [ValidateRange(0, 1024)] public int Threads { get; set; }
    [Parameter] public int Seed { get; set; } = 42;
    [Parameter] public SwitchParameter Wait { get; set; }

    /// <summary>Replace an existing output file (never the base model).</summary>
    [Parameter] public SwitchParameter Force { get; set; }

    protected override void ProcessRecord()
    {
        switch (ParameterSetName)
        {
            case PathSet:
                foreach (var pattern in Path)
                    foreach (var file in GetResolvedProviderPathFromPSPath(pattern, out _))
                        AddDocument(file);
                break;
            case TextSet:
                _texts.AddRange(Text);
                break;
            case KnowledgeSet:
                ReadKnowledgeBase();
                break;
            case RecordSet:
                foreach (var record in InputObject)
                {
                    if (record.BaseObject is FileInfo file)
                    {
                        AddDocument(file.FullName);
                        continue;
                    }
                    var prompt = ReadProperty(record, "Prompt");
                    var response = ReadProperty(record, "Response");
                    if (string.IsNullOrEmpty(prompt) || string.IsNullOrEmpty(response))
                    {
                        WriteError(new ErrorRecord(new ArgumentException("A training record needs non-empty Prompt and Response properties (files: pipe Get-ChildItem output or use -Path; plain text: -Text)."),
                            "CkFineTune.BadRecord", ErrorCategory.InvalidData, record));
                        continue;
                    }
                    _pairs.Add((prompt, response));
                }
                break;
        }
    }

    /// <summary>Reads a file through the knowledge base's document readers (PDF, DOCX, HTML, Markdown, text); a binary
    /// or unreadable file is a non-terminating error naming the file, and the other files still train.</summary>
    private void AddDocument(string file)
    {
        try
        {
            _texts.Add(CkLlm.Engine.Knowledge.Ingestion.DocumentText.ReadFile(file, warning: WriteWarning, cancellationToken: Cancellation));
        }
        catch (CkLlm.Engine.Knowledge.UnreadableDocumentException e)
        {
            WriteError(new ErrorRecord(e, "CkFineTune.UnreadableDocument", ErrorCategory.InvalidData, file));
        }
        catch (CkLlm.Engine.Knowledge.Ingestion.DocumentTooLargeException e)
        {
            WriteError(new ErrorRecord(e, "CkFineTune.DocumentTooLarge", ErrorCategory.LimitsExceeded, file));
        }
    }

    /// <summary>The knowledge base is read here, read-only and without the writer lock, so it may be in use meanwhile;
    /// the texts then travel to the worker in the job spec like -Path's.</summary>
    private void ReadKnowledgeBase()
    {
        var directory = Engine.Knowledge.KnowledgeLocation.IsServer(KnowledgeBase) ? KnowledgeBase : GetUnresolvedProviderPathFromPSPath(KnowledgeBase);
        IReadOnlyList<CkLlm.Engine.Knowledge.KnowledgeDocument> documents;
        try
        {
            documents = CkLlm.Engine.Knowledge.KnowledgeDocuments.Read(directory);
        }
        catch (Exception e) when (e is DirectoryNotFoundException or FileNotFoundException)
        {
            ThrowTerminatingError(new ErrorRecord(e, "CkFineTune.KnowledgeBaseNotFound", ErrorCategory.ObjectNotFound, KnowledgeBase));
            return;
        }
        catch (CkLlm.Engine.Knowledge.KnowledgeBaseCorruptException e)
        {
            ThrowTerminatingError(new ErrorRecord(e, "CkFineTune.KnowledgeBaseCorrupt", ErrorCategory.InvalidData, KnowledgeBase));
            return;
        }
        catch (Exception e) when (e is CkLlm.Engine.Knowledge.KnowledgeBaseException or IOException or UnauthorizedAccessException)
        {
            ThrowTerminatingError(new ErrorRecord(e, "CkFineTune.KnowledgeBaseUnreadable", ErrorCategory.ReadError, KnowledgeBase));
            return;
        }
        var texts = documents.Select(d => d.Text).Where(t => !string.IsNullOrWhiteSpace(t)).ToList();
        if (texts.Count == 0)
        {
            ThrowTerminatingError(new ErrorRecord(
                new InvalidDataException($"The knowledge base '{directory}' has no sources to train on. Add documents with Add-CkKnowledge first."),
                "CkFineTune.KnowledgeBaseEmpty", ErrorCategory.InvalidData, KnowledgeBase));
        }
        WriteVerbose($"Training on {texts.Count} sources of '{directory}' ({texts.Sum(t => t.Length)} characters).");
        _texts.AddRange(texts);
    }

    protected override void EndProcessing() => Run();

    /// <summary>An architecture the training graph does not implement is refused here, before any worker or native call.</summary>
    private void RefuseUntrainableModel(string model)
    {
        try
        {
            CkLlm.Engine.Training.TrainingSupport.Check(model);
        }
        catch (CkLlm.Engine.Training.ModelNotTrainableException e)
        {
            ThrowTerminatingError(new ErrorRecord(e, "CkFineTune.ArchitectureNotTrainable", ErrorCategory.InvalidArgument, Model));
        }
        catch (CkLlm.Engine.Model.Gguf.GgufFormatException e)
        {
            ThrowTerminatingError(new ErrorRecord(e, "CkFineTune.InvalidModel", ErrorCategory.InvalidData, Model));
        }
    }

    private void Run()
    {
        var model = GetUnresolvedProviderPathFromPSPath(Model);
        var output = GetUnresolvedProviderPathFromPSPath(OutputPath);
        // Before the worker and before any native call; a missing file is reported by ValidateOptions.
        if (File.Exists(model)) RefuseUntrainableModel(model);
        var options = new FineTuneOptions
        {
            ModelPath = model,
            OutputPath = output,
            Texts = _texts,
            Pairs = _pairs.Select(p => new TrainingPair(p.Prompt, p.Response)).ToList(),
            Method = Enum.Parse<FineTuneMethod>(Method, ignoreCase: true),
            Rank = Rank,
            Alpha = Alpha,
            LoraTargets = LoraTarget,
            LearningRate = LearningRate,
            Schedule = Enum.Parse<LearningRateSchedule>(Schedule, ignoreCase: true),
            Epochs = Epochs,
            MaxSteps = MaxSteps,
            AccumulationSteps = AccumulationSteps,
            ContextLength = ContextLength,
            BatchSize = BatchSize,
            ValidationSplit = ValidationSplit,
            EarlyStoppingPatience = EarlyStoppingPatience,
            CheckpointPath = CheckpointPath is null ? null : GetUnresolvedProviderPathFromPSPath(CheckpointPath),
            Resume = Resume,
            Merge = Merge,
            Quantization = Quantization,
            MeasurePerplexity = !SkipPerplexity,
            Threads = Threads,
            Seed = Seed,
            Overwrite = Force,
        };
        ValidateOptions(options);
        if (!ShouldProcess(output, $"Fine-tune '{model}' ({Method}, {(Epochs > 0 ? $"{Epochs} epochs" : MaxSteps > 0 ? $"{MaxSteps} steps" : "automatic step budget")})")) return;

        FineTuneWorker worker;
        try
        {
            worker = FineTuneWorker.Start(options);
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            ThrowTerminatingError(new ErrorRecord(e, "CkFineTune.WorkerStart", ErrorCategory.ResourceUnavailable, model));
            return;
        }
        var job = new CkFineTuneJob(worker, MyInvocation.Line);
        if (!Wait)
        {
            JobRepository.Add(job);
            WriteObject(job);
            return;
        }

        // Foreground: relay progress on this thread; Ctrl+C (the pipeline stop token) stops the worker, keeping its checkpoint.
        using var registration = Cancellation.Register(job.StopJob);
        job.Finished.WaitOne(0);
        while (!job.Finished.WaitOne(200))
        {
            if (job.LatestProgress is { } record) WriteProgress(record);
        }
        if (job.LatestProgress is { } last) { last.RecordType = ProgressRecordType.Completed; WriteProgress(last); }
        foreach (var error in job.Error.ReadAll()) WriteError(error);
        foreach (var item in job.Output.ReadAll()) WriteObject(item);
        if (job.JobStateInfo.State == JobState.Stopped)
            WriteWarning($"Fine-tuning stopped; the checkpoint in '{options.EffectiveCheckpointPath}' can be resumed with -Resume.");
    }

    /// <summary>Bad options end the command here, in managed code, before the worker or any native code runs.</summary>
    private void ValidateOptions(FineTuneOptions options)
    {
        try
        {
            FineTuner.Validate(options);
        }
        catch (FineTuneOutputExistsException e)
        {
            ThrowTerminatingError(new ErrorRecord(e, "CkFineTune.OutputExists", ErrorCategory.ResourceExists, OutputPath));
        }
        catch (ArgumentException e) when (e.ParamName == nameof(FineTuneOptions.OutputPath))
        {
            ThrowTerminatingError(new ErrorRecord(e, "CkFineTune.BadOutputPath", ErrorCategory.InvalidArgument, OutputPath));
        }
        catch (ArgumentException e) when (e.ParamName == nameof(FineTuneOptions.Texts))
        {
            ThrowTerminatingError(new ErrorRecord(e, "CkFineTune.NoData", ErrorCategory.InvalidArgument, null));
        }
        catch (FileNotFoundException e)
        {
            ThrowTerminatingError(new ErrorRecord(e, "CkFineTune.ModelNotFound", ErrorCategory.ObjectNotFound, Model));
        }
        catch (ArgumentException e)
        {
            ThrowTerminatingError(new ErrorRecord(e, "CkFineTune.InvalidOptions", ErrorCategory.InvalidArgument, null));
        }
    }
}
