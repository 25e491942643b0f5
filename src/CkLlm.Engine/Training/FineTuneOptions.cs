namespace CkLlm.Engine.Training;

public enum FineTuneMethod { Lora, Full }

public enum LearningRateSchedule { Constant, Linear, Cosine }

/// <summary>A prompt/response pair; the loss covers the response only.</summary>
public sealed record TrainingPair(string Prompt, string Response);

/// <summary>Everything a fine-tuning run needs. Defaults suit small models and a few KB of text.</summary>
public sealed record FineTuneOptions
{
    public required string ModelPath { get; init; }

    /// <summary>The adapter (LoRA) or model (Full, or LoRA with <see cref="Merge"/>) to write.</summary>
    public required string OutputPath { get; init; }

    /// <summary>Plain documents: each becomes context-length training windows.</summary>
    public IReadOnlyList<string> Texts { get; init; } = [];

    /// <summary>Prompt/response records, formatted with the model's chat template when it has one.</summary>
    public IReadOnlyList<TrainingPair> Pairs { get; init; } = [];

    public FineTuneMethod Method { get; init; } = FineTuneMethod.Lora;
    public int Rank { get; init; } = 8;

    /// <summary>LoRA alpha; the update is scaled by alpha / rank (llama.cpp's convention).</summary>
    public float Alpha { get; init; } = 16;

    /// <summary>Projections LoRA adapts; null picks every projection plus the output when it is not tied.</summary>
    public IReadOnlyList<string>? LoraTargets { get; init; }

    /// <summary>Where every step's metrics go; null uses "&lt;OutputPath&gt;.metrics.csv", "" writes none.</summary>
    public string? MetricsPath { get; init; }

    /// <summary>Draw the loss curve to "&lt;OutputPath&gt;.loss.png" at the end.</summary>
    public bool PlotLoss { get; init; } = true;

    /// <summary>Peak learning rate; 0 picks one by method and model size (<see cref="FineTunePlan.DefaultLearningRate"/>).</summary>
    public float LearningRate { get; init; }

    public LearningRateSchedule Schedule { get; init; } = LearningRateSchedule.Cosine;

    /// <summary>Fraction of all steps spent warming the learning rate up linearly.</summary>
    public double WarmupFraction { get; init; } = 0.05;

    public float WeightDecay { get; init; }
    /// <summary>Passes over the data; 0 (default) lets the step budget decide (<see cref="MaxSteps"/>).</summary>
    public int Epochs { get; init; }

    /// <summary>Optimizer steps at most; 0 (default) picks a budget from the data: 3 epochs, but at least 600 and at
    /// most 2000 steps when <see cref="Epochs"/> is 0 too.</summary>
    public int MaxSteps { get; init; }

    /// <summary>Stop when the smoothed training loss has not improved by 1% for this many steps (or fell below 0.02);
    /// 0 disables; -1 (default) enables it (patience max(30, 2 epochs)) only when the step budget is automatic.</summary>
    public int PlateauPatience { get; init; } = -1;
    public int ContextLength { get; init; } = 128;

    /// <summary>Windows per optimizer step (evaluated together in one graph).</summary>
    public int BatchSize { get; init; } = 4;

    /// <summary>Batches whose gradients add up before one optimizer step (effective batch = BatchSize x this).</summary>
    public int AccumulationSteps { get; init; } = 1;

    /// <summary>Rebuild the graph, its backward graph and the allocation for every step (the slower path before graph
    /// reuse; kept so the benchmark can measure both in one run). No gradient accumulation.</summary>
    public bool RebuildGraphs { get; init; }

    /// <summary>Add a training window starting at every sentence of the documents (BOS, then the sentence and what
    /// follows), so the model continues a sentence from its opening words without the text before it. Null (default):
    /// on with the automatic step budget (no <see cref="Epochs"/> or <see cref="MaxSteps"/>: an explicit epoch stays one
    /// pass over the text) and no <see cref="ValidationSplit"/> (the extra windows would overlap held-out ones).</summary>
    public bool? SentenceWindows { get; init; }

    /// <summary>Fraction of windows held out for the validation loss (0 disables validation).</summary>
    public double ValidationSplit { get; init; }

    /// <summary>Stop after this many epochs without a better validation loss (0 disables early stopping).</summary>
    public int EarlyStoppingPatience { get; init; }

    public int Seed { get; init; } = 42;
    public int Threads { get; init; }

    /// <summary>Folder for the resumable checkpoint; null uses "&lt;OutputPath&gt;.checkpoint".</summary>
    public string? CheckpointPath { get; init; }

    /// <summary>Continue from the checkpoint instead of starting over.</summary>
    public bool Resume { get; init; }

    /// <summary>LoRA only: write the base model with the adapter merged in instead of an adapter.</summary>
    public bool Merge { get; init; }

    /// <summary>With <see cref="Merge"/> or Full: quantize the written model (llama.cpp ftype name such as "Q8_0").</summary>
    public string? Quantization { get; init; }

    /// <summary>Replace an existing file at <see cref="OutputPath"/> (never the base model).</summary>
    public bool Overwrite { get; init; }

    /// <summary>Measure llama.cpp perplexity on the training texts before and after training.</summary>
    public bool MeasurePerplexity { get; init; } = true;

    public string EffectiveCheckpointPath => CheckpointPath ?? Path.GetFullPath(OutputPath) + ".checkpoint";
    public string? EffectiveMetricsPath => MetricsPath is null ? Path.GetFullPath(OutputPath) + ".metrics.csv" : MetricsPath.Length == 0 ? null : Path.GetFullPath(MetricsPath);
    public string LossPlotPath => Path.GetFullPath(OutputPath) + ".loss.png";
}

/// <summary>The output file exists and <see cref="FineTuneOptions.Overwrite"/> was not given.</summary>
public sealed class FineTuneOutputExistsException(string path)
    : IOException($"The output '{path}' already exists; give -Force (Overwrite) to replace it.")
{
    public string Path { get; } = path;
}

/// <summary>Reported after every optimizer step and every validation pass.</summary>
public sealed record FineTuneProgress(
    string Phase,
    int Epoch,
    int Epochs,
    int Step,
    int TotalSteps,
    double Loss,
    double? ValidationLoss,
    double LearningRate,
    double TokensPerSecond,
    TimeSpan Elapsed,
    TimeSpan? Remaining);

public sealed record FineTuneResult
{
    public string? AdapterPath { get; init; }
    public string? ModelPath { get; init; }
    public required string BaseModelPath { get; init; }
    public FineTuneMethod Method { get; init; }
    public int Epochs { get; init; }
    public int Steps { get; init; }
    public IReadOnlyList<double> TrainLoss { get; init; } = [];
    public IReadOnlyList<double> ValidationLoss { get; init; } = [];
    public double? PerplexityBefore { get; init; }
    public double? PerplexityAfter { get; init; }
    public double TokensPerSecond { get; init; }
    /// <summary>Peak resident memory of the process during this run (VmHWM, reset when the run starts), in bytes.</summary>
    public long PeakMemory { get; init; }
    public TimeSpan Duration { get; init; }
    public long TrainableParameters { get; init; }
    public int TrainingTokens { get; init; }
    public bool StoppedEarly { get; init; }
    public string? CheckpointPath { get; init; }

    /// <summary>The peak learning rate used (the default resolves by method and model size).</summary>
    public float LearningRate { get; init; }

    /// <summary>The projections LoRA adapted (empty for Full).</summary>
    public IReadOnlyList<string> LoraTargets { get; init; } = [];

    /// <summary>Every optimizer step's loss, learning rate, tokens/s and (at epoch ends) validation loss: the same
    /// numbers as the metrics CSV.</summary>
    public IReadOnlyList<FineTuneStepMetrics> History { get; init; } = [];

    /// <summary>The metrics CSV written during the run (null when disabled).</summary>
    public string? MetricsPath { get; init; }

    /// <summary>The loss curve PNG (null when disabled or when it could not be drawn).</summary>
    public string? LossPlotPath { get; init; }

    /// <summary>Seconds spent creating the trainer's state before its first step (gradient accumulators, optimizer
    /// moments, transposed weights), which <see cref="TokensPerSecond"/> leaves out.</summary>
    internal double TrainerSetupSeconds { get; init; }

    /// <summary>Seconds of the optimizer steps <see cref="TokensPerSecond"/> is taken over.</summary>
    internal double TrainSeconds { get; init; }
}
