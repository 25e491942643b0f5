using System.Management.Automation;
using CkLlm.Engine.Model.Generation;
using CkLlm.Engine.Model.Gguf;

namespace CkLlm.Commands;

/// <summary>Writes a GGUF model from scratch (seeded random F32 weights, optionally quantized by llama.cpp) in the layout of a model family.</summary>
[Cmdlet(VerbsCommon.New, "CkModel", SupportsShouldProcess = true)]
[OutputType(typeof(GgufModelSummary))]
public sealed class NewCkModelCommand : CkCmdlet
{
    /// <summary>The value of -ChatTemplate that embeds the built-in ChatML template and its tokens.</summary>
    public const string ChatMLShorthand = "ChatML";

    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    [Parameter]
    [ValidateSet("Tiny", "Small", "Medium", IgnoreCase = true)]
    public string Preset { get; set; } = "Tiny";

    // A string, not the engine enum: parameter types are reflected when the module loads, before the engine's load context exists.
    [Parameter]
    [ValidateSet("Llama", "Llama3", "Qwen2", "SmolLM", "Phi3", "Gemma2", IgnoreCase = true)]
    public string Architecture { get; set; } = "Llama";

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[]? Corpus { get; set; }

    [Parameter]
    public int Seed { get; set; } = 42;

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ChatTemplate { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Name { get; set; }

    // Checked by the engine, not a ValidateSet: the accepted names are llama.cpp's and the error lists them.
    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(QuantizationNameCompleter))]
    public string? Quantization { get; set; }

    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void EndProcessing()
    {
        var path = ResolvePath(Path);
        string? quantization = null;
        if (Quantization is not null && !ModelQuantization.TryNormalize(Quantization, out quantization))
        {
            WriteInputError(new ArgumentException($"Unknown quantization '{Quantization}'. Use one of: {string.Join(", ", ModelQuantization.Names)}.", nameof(Quantization)),
                "UnknownQuantization", ErrorCategory.InvalidArgument, Quantization);
            return;
        }
        if (File.Exists(path) && !Force)
        {
            WriteInputError(new IOException($"'{path}' already exists. Use -Force to overwrite it."),
                "ModelFileExists", ErrorCategory.ResourceExists, path);
            return;
        }

        var corpus = ReadCorpus();
        if (corpus is null) return;

        var preset = ModelPreset.Get(Preset);
        var options = new ModelGenerationOptions
        {
            Preset = preset,
            Architecture = Enum.Parse<ModelArchitecture>(Architecture, ignoreCase: true),
            Corpus = corpus,
            Seed = Seed,
            Name = Name ?? System.IO.Path.GetFileNameWithoutExtension(path),
            Quantization = quantization,
        };
        options = string.Equals(ChatTemplate, ChatMLShorthand, StringComparison.OrdinalIgnoreCase)
            ? options.WithChatML()
            : options with { ChatTemplate = ChatTemplate };

        var action = $"Write a {preset.Name} {Architecture} model (seed {Seed}, {quantization ?? ModelQuantization.Unquantized})";
        if (!ShouldProcess(path, action)) return;

        try
        {
            GenerateWithProgress(path, options, preset);
            WriteObject(GgufValidator.Validate(path));
        }
        catch (OperationCanceledException) when (Cancellation.IsCancellationRequested)
        {
            // Stopped by Ctrl+C: the generator writes through a temporary file, so nothing is left behind.
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            WriteError(new ErrorRecord(e, "ModelWriteFailed", ErrorCategory.WriteError, path));
        }
        catch (GgufFormatException e)
        {
            WriteError(new ErrorRecord(e, "GeneratedModelInvalid", ErrorCategory.InvalidData, path));
        }
    }

    /// <summary>Reads every corpus file; returns null (after writing an ObjectNotFound error) when one is missing.</summary>
    private string? ReadCorpus()
    {
        if (Corpus is null) return "";
        var texts = new List<string>();
        foreach (var item in Corpus)
        {
            var file = ResolvePath(item);
            if (!File.Exists(file))
            {
                WriteInputError(new FileNotFoundException($"Corpus file '{file}' does not exist.", file),
                    "CorpusFileNotFound", ErrorCategory.ObjectNotFound, file);
                return null;
            }
            texts.Add(File.ReadAllText(file));
        }
        return string.Join("\n", texts);
    }

    /// <summary>Runs the generator on a worker thread so progress can be written from the pipeline thread.</summary>
    private void GenerateWithProgress(string path, ModelGenerationOptions options, ModelPreset preset)
    {
        double fraction = 0;
        var progress = new Progress(value => Volatile.Write(ref fraction, value));
        var task = Task.Run(() => ModelGenerator.Generate(path, options, progress, Cancellation));
        var record = new ProgressRecord(1, "New-CkModel", $"Writing {preset.Name} model to {path}");
        try
        {
            while (!task.Wait(250))
            {
                record.PercentComplete = (int)(Volatile.Read(ref fraction) * 100);
                WriteProgress(record);
            }
        }
        catch (PipelineStoppedException)
        {
            // Ctrl+C cancelled the pipeline's token; wait until the generator has removed its temporary file.
            try { task.Wait(); } catch (AggregateException) { }
            throw;
        }
        record.RecordType = ProgressRecordType.Completed;
        WriteProgress(record);
        task.GetAwaiter().GetResult();
    }

    /// <summary>Synchronous IProgress (System.Progress posts to a SynchronizationContext we do not want).</summary>
    private sealed class Progress(Action<double> report) : IProgress<double>
    {
        public void Report(double value) => report(value);
    }
}
