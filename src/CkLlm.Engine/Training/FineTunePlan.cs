namespace CkLlm.Engine.Training;

/// <summary>
/// The concrete run the options ask for once the model and data are known: what defaults resolve to. With no epoch
/// count given, the run has a step budget instead, so a one-page document still gets enough optimizer steps, and it
/// stops early when the training loss stops falling.
/// </summary>
internal sealed record FineTunePlan(
    int Epochs, int TotalSteps, int StepsPerEpoch, float LearningRate, IReadOnlyList<string> LoraTargets, int PlateauPatience)
{
    /// <summary>Optimizer steps a default run takes at least (a one-page document with its sentence windows is ~5
    /// steps per epoch). Tiny preset, facts document, defaults otherwise: 300 steps recalled 15/18 sentences (loss
    /// 0.56), 600 recalled 18/18 (loss 0.05); Small at 300 only 5/18 (loss 1.1), with this budget 18/18 (plateau stop
    /// at 406 steps, loss 0.04, llama.cpp perplexity 4,252 -> 1.20). The plateau stop ends a learned run early.</summary>
    public const int MinimumDefaultSteps = 600;

    /// <summary>Optimizer steps a default run takes at most, however large the data (then less than 3 epochs).</summary>
    public const int MaximumDefaultSteps = 2000;

    /// <summary>Training loss (nats per token) below which the text counts as learned: a default run stops there.</summary>
    public const double LearnedLoss = 0.02;

    public static FineTunePlan Resolve(FineTuneOptions o, int trainWindows, long modelParameters, bool outputUntied)
    {
        int batches = Math.Max(1, (trainWindows + o.BatchSize - 1) / o.BatchSize);
        int stepsPerEpoch = (batches + o.AccumulationSteps - 1) / o.AccumulationSteps;
        int epochs, totalSteps;
        if (o.Epochs > 0)
        {
            epochs = o.Epochs;
            totalSteps = o.MaxSteps > 0 ? Math.Min(o.MaxSteps, epochs * stepsPerEpoch) : epochs * stepsPerEpoch;
        }
        else
        {
            totalSteps = o.MaxSteps > 0 ? o.MaxSteps : Math.Clamp(3 * stepsPerEpoch, MinimumDefaultSteps, MaximumDefaultSteps);
            epochs = (totalSteps + stepsPerEpoch - 1) / stepsPerEpoch;
        }
        // Plateau stopping is on by default only when the step budget was chosen for the user.
        int patience = o.PlateauPatience >= 0 ? o.PlateauPatience : o.Epochs > 0 || o.MaxSteps > 0 ? 0 : Math.Max(30, 2 * stepsPerEpoch);
        return new FineTunePlan(epochs, totalSteps, stepsPerEpoch,
            o.LearningRate > 0 ? o.LearningRate : DefaultLearningRate(o.Method, modelParameters),
            o.LoraTargets ?? DefaultLoraTargets(outputUntied), patience);
    }

    /// <summary>Peak learning rate by method and size: small models take large steps, large models need small ones.
    /// Measured on the generated Tiny preset with the facts document (300 steps, LoRA r8 on every projection):
    /// 1e-2 oscillates (loss 6.3 -> 3.1, recall 1/18), 3e-3 memorises (loss 0.29, perplexity 285x lower, recall 17/18).</summary>
    public static float DefaultLearningRate(FineTuneMethod method, long modelParameters) => (method, modelParameters) switch
    {
        (FineTuneMethod.Lora, < 10_000_000) => 3e-3f,
        (FineTuneMethod.Lora, < 100_000_000) => 1e-3f,
        (FineTuneMethod.Lora, < 1_000_000_000) => 5e-4f,
        (FineTuneMethod.Lora, _) => 2e-4f,
        (_, < 10_000_000) => 3e-3f,
        (_, < 100_000_000) => 1e-3f,
        (_, < 1_000_000_000) => 1e-4f,
        _ => 3e-5f,
    };

    /// <summary>Every projection, plus the output projection when it is not tied to the embedding: a document's
    /// facts are new words, and adapting the output is what lets a frozen model put mass on them.</summary>
    public static IReadOnlyList<string> DefaultLoraTargets(bool outputUntied) =>
        outputUntied ? Training.LoraTargets.All : Training.LoraTargets.Default;
}

/// <summary>Watches the per-step training loss for a plateau: an exponential moving average that has not improved
/// by 1% for <c>patience</c> steps once <c>minimumSteps</c> have run (small models sit on plateaus early and then
/// break through), or that fell below <see cref="FineTunePlan.LearnedLoss"/> at any time.</summary>
internal sealed class LossPlateau(int patience, int minimumSteps = 0)
{
    private int _steps;

    private double _average = double.NaN, _best = double.PositiveInfinity;
    private int _sinceBest;

    public bool Enabled => patience > 0;

    /// <summary>Adds a step's loss; true when the run should stop.</summary>
    public bool Add(double loss)
    {
        if (!Enabled || !double.IsFinite(loss)) return false;
        _steps++;
        _average = double.IsNaN(_average) ? loss : 0.8 * _average + 0.2 * loss;
        if (_average < _best * 0.99) { _best = _average; _sinceBest = 0; }
        else _sinceBest++;
        return _average < FineTunePlan.LearnedLoss || (_sinceBest >= patience && _steps >= minimumSteps);
    }
}
