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

    public IReadOnlyList<string>? LoraTargets { get; init; }

    /// <summary>Peak learning rate; 0 picks 3e-3 for LoRA and 1e-3 for Full.</summary>
    public float LearningRate { get; init; }

    public LearningRateSchedule Schedule { get; init; } = LearningRateSchedule.Cosine;

    /// <summary>Fraction of all steps spent warming the learning rate up linearly.</summary>
    public double WarmupFraction { get; init; } = 0.05;

    public float WeightDecay { get; init; }
    public int Epochs { get; init; } = 3;
    public int ContextLength { get; init; } = 128;

    /// <summary>Windows per optimizer step (evaluated together in one graph).</summary>
    public int BatchSize { get; init; } = 4;

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

    /// <summary>Measure llama.cpp perplexity on the training texts before and after training.</summary>
    public bool MeasurePerplexity { get; init; } = true;

    public string EffectiveCheckpointPath => CheckpointPath ?? Path.GetFullPath(OutputPath) + ".checkpoint";
    public float EffectiveLearningRate => LearningRate > 0 ? LearningRate : Method == FineTuneMethod.Lora ? 3e-3f : 1e-3f;
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
    public long PeakMemory { get; init; }
    public TimeSpan Duration { get; init; }
    public long TrainableParameters { get; init; }
    public int TrainingTokens { get; init; }
    public bool StoppedEarly { get; init; }
    public string? CheckpointPath { get; init; }
}
