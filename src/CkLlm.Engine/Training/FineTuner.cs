using System.Diagnostics;
using CkLlm.Engine.Model.Generation;
using CkLlm.Engine.Model.Gguf;
using CkLlm.Engine.Training.Native;

namespace CkLlm.Engine.Training;

/// <summary>
/// Fine-tunes a llama-family GGUF on ggml directly: the forward graph of <see cref="LlamaGraph"/> over whole windows,
/// ggml's autodiff, and AdamW through the ggml_opt API in a loop of our own. Labels are built per batch, so memory
/// is bounded by one batch (n_vocab x scored positions), not by the dataset.
/// </summary>
public static unsafe class FineTuner
{
    public static FineTuneResult Run(FineTuneOptions options, IProgress<FineTuneProgress>? progress = null, CancellationToken cancellation = default)
    {
        Validate(options);
        ResetPeakResident();
        var clock = Stopwatch.StartNew();
        var modelPath = Path.GetFullPath(options.ModelPath);
        var outputPath = Path.GetFullPath(options.OutputPath);
        var checkpointDir = Path.GetFullPath(options.EffectiveCheckpointPath);

        var windows = TrainingData.Build(modelPath, options.Texts, options.Pairs, options.ContextLength,
            sentenceWindows: options.SentenceWindows ?? (options.Epochs == 0 && options.MaxSteps == 0 && options.ValidationSplit == 0));
        var (train, validation) = Split(windows, options.ValidationSplit, options.Seed);
        var documentText = string.Join("\n", options.Texts.Where(t => !string.IsNullOrWhiteSpace(t)));
        double? perplexityBefore = options.MeasurePerplexity && documentText.Length > 0
            ? LlamaCppEvaluator.MeasurePerplexity(modelPath, null, documentText, options.ContextLength + 1, cancellation).Perplexity
            : null;

        using var model = new LlamaGraphModel(modelPath, options.Threads);
        foreach (var w in windows) model.CheckTokens(w.Tokens);
        var plan = FineTunePlan.Resolve(options, train.Count, model.File.Tensors().Sum(Ggml.ggml_nelements), model.Graph.HasOutputTensor);
        using var lora = options.Method == FineTuneMethod.Lora
            ? new LoraWeights(model.Graph, model.Backend, options.Rank, options.Alpha, plan.LoraTargets, options.Seed)
            : null;
        var parameters = TrainableParameters(model, lora);
        long trainable = parameters.Sum(Ggml.ggml_nelements);

        var state = new CheckpointState(modelPath, options.Method.ToString(), options.Rank, options.Alpha, options.ContextLength, 0, 0, [], [], double.PositiveInfinity, 0);
        if (options.Resume) state = FineTuneCheckpoint.Load(checkpointDir, state, parameters);

        int batchesPerEpoch = (train.Count + options.BatchSize - 1) / options.BatchSize;
        long setupStarted = Stopwatch.GetTimestamp();
        using ITrainingSteps steps = options.RebuildGraphs ? new RebuiltGraphSteps(model, lora) : new ReusedGraphSteps(model, lora, parameters);
        double setupSeconds = Stopwatch.GetElapsedTime(setupStarted).TotalSeconds;
        using var metrics = new FineTuneMetricsWriter(options.EffectiveMetricsPath, append: options.Resume);
        var plateau = new LossPlateau(plan.PlateauPatience, minimumSteps: plan.TotalSteps / 2);
        float[]? best = null;
        long tokensTrained = 0;
        double trainSeconds = 0;
        bool stoppedEarly = false, plateaued = false;
        var random = new Random(options.Seed);
        int step = state.Steps;
        for (int epoch = 0; epoch < plan.Epochs && step < plan.TotalSteps && !plateaued; epoch++)
        {
            // Shuffles are drawn for skipped epochs too, so a resumed run sees the same order as an uninterrupted one.
            var order = Enumerable.Range(0, train.Count).OrderBy(_ => random.Next()).ToArray();
            if (epoch < state.EpochsCompleted) continue;
            double lossSum = 0;
            int lossRows = 0;
            for (int s = 0; s < plan.StepsPerEpoch && step < plan.TotalSteps; s++)
            {
                if (cancellation.IsCancellationRequested)
                {
                    // The interrupted epoch restarts on resume, from the weights as they are now.
                    FineTuneCheckpoint.Save(checkpointDir, state, model, parameters);
                    cancellation.ThrowIfCancellationRequested();
                }
                var microBatches = Enumerable.Range(s * options.AccumulationSteps, options.AccumulationSteps)
                    .Where(b => b < batchesPerEpoch)
                    .Select(b => (IReadOnlyList<TrainingWindow>)order.Skip(b * options.BatchSize).Take(options.BatchSize).Select(i => train[i]).ToList())
                    .ToList();
                float lr = LearningRate(options, step, plan.TotalSteps, plan.LearningRate);
                var started = Stopwatch.GetTimestamp();
                var (loss, rows) = steps.Train(microBatches, lr, options.WeightDecay);
                trainSeconds += Stopwatch.GetElapsedTime(started).TotalSeconds;
                tokensTrained += microBatches.Sum(b => b.Sum(w => w.Length));
                lossSum += loss * rows;
                lossRows += rows;
                step++;
                double tps = tokensTrained / Math.Max(trainSeconds, 1e-9);
                bool lastOfEpoch = s == plan.StepsPerEpoch - 1 || step == plan.TotalSteps;
                double? validationLoss = lastOfEpoch && validation.Count > 0 ? EvaluateAll(steps, validation, options.BatchSize) : null;
                metrics.Add(new FineTuneStepMetrics(step, epoch + 1, loss, lr, tps, validationLoss, clock.Elapsed.TotalSeconds));
                progress?.Report(new FineTuneProgress("train", epoch + 1, plan.Epochs, step, plan.TotalSteps, loss,
                    validationLoss ?? (state.ValidationLoss.LastOrDefault() is var v && v > 0 ? v : null),
                    lr, tps, clock.Elapsed, TimeSpan.FromSeconds(trainSeconds / Math.Max(1, step - state.Steps) * (plan.TotalSteps - step))));
                if (plateau.Add(loss)) { plateaued = true; break; }
            }
            double trainLoss = lossSum / Math.Max(1, lossRows);
            double? epochValidation = validation.Count > 0 ? metrics.Steps[^1].ValidationLoss ?? EvaluateAll(steps, validation, options.BatchSize) : null;
            var trainLosses = state.TrainLoss.Append(trainLoss).ToList();
            var validationLosses = epochValidation is null ? state.ValidationLoss : state.ValidationLoss.Append(epochValidation.Value).ToList();
            int without = state.EpochsWithoutImprovement;
            double bestLoss = state.BestValidationLoss;
            if (epochValidation is not null)
            {
                if (epochValidation < bestLoss) { bestLoss = epochValidation.Value; without = 0; if (options.EarlyStoppingPatience > 0) best = FineTuneCheckpoint.Snapshot(parameters); }
                else without++;
            }
            state = state with
            {
                EpochsCompleted = epoch + 1, Steps = step, TrainLoss = trainLosses, ValidationLoss = validationLosses,
                BestValidationLoss = bestLoss, EpochsWithoutImprovement = without,
            };
            FineTuneCheckpoint.Save(checkpointDir, state, model, parameters);
            progress?.Report(new FineTuneProgress("epoch", epoch + 1, plan.Epochs, step, plan.TotalSteps, trainLoss, epochValidation,
                LearningRate(options, step, plan.TotalSteps, plan.LearningRate), tokensTrained / Math.Max(trainSeconds, 1e-9), clock.Elapsed,
                TimeSpan.FromSeconds(trainSeconds / Math.Max(1, step - state.Steps + 1) * (plan.TotalSteps - step))));
            if (options.EarlyStoppingPatience > 0 && without >= options.EarlyStoppingPatience)
            {
                stoppedEarly = true;
                break;
            }
        }
        if (stoppedEarly && best is not null) FineTuneCheckpoint.Restore(parameters, best);

        string? adapterPath = null, writtenModel = null;
        if (lora is not null && !options.Merge)
        {
            lora.Save(outputPath, model.Hyper.Architecture);
            adapterPath = outputPath;
        }
        else
        {
            ModelWriter.Write(model, lora, outputPath, options.Quantization);
            writtenModel = outputPath;
        }
        string? plotPath = options.PlotLoss && metrics.Steps.Count > 0 ? LossPlot.TryDraw(metrics.Steps, options.LossPlotPath, Path.GetFileName(outputPath)) : null;

        double? perplexityAfter = options.MeasurePerplexity && documentText.Length > 0
            ? LlamaCppEvaluator.MeasurePerplexity(writtenModel ?? modelPath, adapterPath, documentText, options.ContextLength + 1, cancellation).Perplexity
            : null;
        return new FineTuneResult
        {
            AdapterPath = adapterPath,
            ModelPath = writtenModel,
            BaseModelPath = modelPath,
            Method = options.Method,
            Epochs = state.EpochsCompleted,
            Steps = state.Steps,
            TrainLoss = state.TrainLoss,
            ValidationLoss = state.ValidationLoss,
            PerplexityBefore = perplexityBefore,
            PerplexityAfter = perplexityAfter,
            TokensPerSecond = tokensTrained / Math.Max(trainSeconds, 1e-9),
            PeakMemory = PeakResidentBytes(),
            Duration = clock.Elapsed,
            TrainableParameters = trainable,
            TrainingTokens = train.Sum(w => w.Length),
            StoppedEarly = stoppedEarly || plateaued,
            CheckpointPath = checkpointDir,
            LearningRate = plan.LearningRate,
            LoraTargets = lora is null ? [] : plan.LoraTargets,
            History = metrics.Steps,
            MetricsPath = metrics.Path,
            LossPlotPath = plotPath,
            TrainerSetupSeconds = setupSeconds,
            TrainSeconds = trainSeconds,
        };
    }

    /// <summary>
    /// Checks the options in managed code, before any native call: paths (the output is never the base model, and
    /// an existing output needs <see cref="FineTuneOptions.Overwrite"/>), ranges and combinations. Throws
    /// <see cref="ArgumentException"/> (or a subclass), <see cref="FileNotFoundException"/> or
    /// <see cref="FineTuneOutputExistsException"/>.
    /// </summary>
    public static void Validate(FineTuneOptions o)
    {
        if (string.IsNullOrWhiteSpace(o.ModelPath)) throw new ArgumentException("A model path is required.", nameof(o.ModelPath));
        if (!File.Exists(o.ModelPath)) throw new FileNotFoundException($"Model file '{o.ModelPath}' does not exist.", o.ModelPath);
        if (string.IsNullOrWhiteSpace(o.OutputPath)) throw new ArgumentException("An output path is required.", nameof(o.OutputPath));
        var output = Path.GetFullPath(o.OutputPath);
        if (SameFile(output, o.ModelPath))
            throw new ArgumentException($"The output path '{output}' is the base model: the base model is never modified. Choose another -OutputPath.", nameof(o.OutputPath));
        if (Directory.Exists(output)) throw new ArgumentException($"The output path '{output}' is a directory; give a file name.", nameof(o.OutputPath));
        if (SameFile(output, o.EffectiveCheckpointPath)) throw new ArgumentException("The output path must differ from the checkpoint folder.", nameof(o.OutputPath));
        if (File.Exists(output) && !o.Overwrite) throw new FineTuneOutputExistsException(output);
        if (o.Epochs < 0) throw new ArgumentOutOfRangeException(nameof(o.Epochs), o.Epochs, "Epochs must be at least 1 (or 0 for the automatic step budget).");
        if (o.MaxSteps < 0) throw new ArgumentOutOfRangeException(nameof(o.MaxSteps), o.MaxSteps, "The step budget must be at least 1 (or 0 for automatic).");
        if (o.AccumulationSteps is < 1 or > 4096) throw new ArgumentOutOfRangeException(nameof(o.AccumulationSteps), o.AccumulationSteps, "Accumulation steps must be between 1 and 4096.");
        if (o.RebuildGraphs && o.AccumulationSteps > 1) throw new ArgumentException("Gradient accumulation needs the reused graphs (RebuildGraphs off).", nameof(o.AccumulationSteps));
        if (o.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(o.BatchSize), o.BatchSize, "The batch size must be at least 1.");
        if (o.ContextLength is < 2 or > 32768) throw new ArgumentOutOfRangeException(nameof(o.ContextLength), o.ContextLength, "The context length must be between 2 and 32768.");
        if (o.ValidationSplit is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(o.ValidationSplit), o.ValidationSplit, "The validation split must be in [0, 1).");
        if (o.WarmupFraction is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(o.WarmupFraction), o.WarmupFraction, "The warm-up fraction must be in [0, 1).");
        if (!(o.LearningRate >= 0) || o.LearningRate > 1) throw new ArgumentOutOfRangeException(nameof(o.LearningRate), o.LearningRate, "The learning rate must be in (0, 1] (or 0 for the default).");
        if (o.WeightDecay is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(o.WeightDecay), o.WeightDecay, "Weight decay must be in [0, 1].");
        if (o.Method == FineTuneMethod.Full && o.Merge) throw new ArgumentException("-Merge applies to LoRA only; Full already writes a complete model.");
        if (o.Quantization is not null && o.Method == FineTuneMethod.Lora && !o.Merge)
            throw new ArgumentException("Quantization applies to a written model (Full, or LoRA with Merge), not to an adapter.");
        // Checked now, not when the trained model is written: a misspelt type must not cost a whole run.
        if (o.Quantization is not null && !ModelQuantization.TryNormalize(o.Quantization, out _))
            throw new ArgumentException($"'{o.Quantization}' is not a quantization llama.cpp can write without an importance matrix. Use one of: {string.Join(", ", ModelQuantization.Names)}.", nameof(o.Quantization));
        if (o.Texts.All(string.IsNullOrWhiteSpace) && o.Pairs.Count == 0)
            throw new ArgumentException("There is nothing to train on: the texts are empty or blank and there are no prompt/response pairs.", nameof(o.Texts));
        TrainingSupport.Check(o.ModelPath);
    }

    /// <summary>Same file after resolving symbolic links (a link to the base model is the base model).</summary>
    private static bool SameFile(string a, string b)
    {
        static string Real(string p)
        {
            p = Path.GetFullPath(p);
            try { return File.Exists(p) && File.ResolveLinkTarget(p, returnFinalTarget: true) is { } target ? Path.GetFullPath(target.FullName) : p; }
            catch (IOException) { return p; }
        }
        return string.Equals(Real(a), Real(b), OperatingSystem.IsLinux() ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase);
    }

    private static (List<TrainingWindow> Train, List<TrainingWindow> Validation) Split(List<TrainingWindow> windows, double split, int seed)
    {
        int held = split > 0 ? Math.Max(1, (int)Math.Round(windows.Count * split)) : 0;
        if (held >= windows.Count) held = windows.Count - 1;
        if (held <= 0) return (windows, []);
        var shuffled = new Random(seed + 7919);
        var order = Enumerable.Range(0, windows.Count).OrderBy(_ => shuffled.Next()).ToList();
        var heldOut = order.Take(held).ToHashSet();
        return (windows.Where((_, i) => !heldOut.Contains(i)).ToList(), windows.Where((_, i) => heldOut.Contains(i)).ToList());
    }

    internal static float LearningRate(FineTuneOptions o, int step, int totalSteps, float? resolvedPeak = null)
    {
        float peak = resolvedPeak ?? (o.LearningRate > 0 ? o.LearningRate : FineTunePlan.DefaultLearningRate(o.Method, 0));
        int warmup = (int)Math.Round(o.WarmupFraction * totalSteps);
        if (step < warmup) return peak * (step + 1) / (warmup + 1);
        double progress = totalSteps <= warmup ? 1 : (double)(step - warmup) / Math.Max(1, totalSteps - warmup);
        progress = Math.Clamp(progress, 0, 1);
        const double floor = 0.1; // never decay to zero: ggml asserts alpha > 0, and a tail at 10% still learns
        double factor = o.Schedule switch
        {
            LearningRateSchedule.Constant => 1,
            LearningRateSchedule.Linear => 1 - (1 - floor) * progress,
            _ => floor + (1 - floor) * 0.5 * (1 + Math.Cos(Math.PI * progress)),
        };
        return (float)(peak * factor);
    }

    /// <summary>The tensors a step trains (the LoRA pairs, or every trainable weight for Full), marked as ggml parameters.</summary>
    internal static List<IntPtr> TrainableParameters(LlamaGraphModel model, LoraWeights? lora)
    {
        var parameters = lora is not null ? lora.Parameters.ToList() : FullParameters(model);
        foreach (var t in parameters) Ggml.ggml_set_param(t);
        return parameters;
    }

    private static List<IntPtr> FullParameters(LlamaGraphModel model)
    {
        var tensors = model.File.Tensors().Where(model.Graph.IsTrainable).ToList();
        var notF32 = tensors.Where(t => Ggml.TypeOf(t) != (int)GgmlType.F32).Select(Ggml.NameOf).ToList();
        if (notF32.Count > 0)
            throw new NotSupportedException($"Full fine-tuning needs an all-F32 model; '{notF32[0]}' and {notF32.Count - 1} more tensors are quantized or F16. Use LoRA (optionally with -Merge) instead.");
        return tensors;
    }

    private static double EvaluateAll(ITrainingSteps steps, List<TrainingWindow> windows, int batchSize)
    {
        double sum = 0;
        int rows = 0;
        for (int i = 0; i < windows.Count; i += batchSize)
        {
            var (loss, n) = steps.Evaluate(windows.Skip(i).Take(batchSize).ToList());
            sum += loss * n;
            rows += n;
        }
        return sum / Math.Max(1, rows);
    }

    /// <summary>Starts a new peak-RSS (VmHWM) period, so a run's PeakMemory is its own and not that of whatever ran
    /// earlier in the same process (other runs, tests, a benchmark's previous method).</summary>
    private static void ResetPeakResident()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    /// <summary>Peak resident memory of this process (VmHWM), in bytes.</summary>
    public static long PeakResidentBytes()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line[6..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        }
        catch (IOException) { }
        return Process.GetCurrentProcess().PeakWorkingSet64;
    }
}
