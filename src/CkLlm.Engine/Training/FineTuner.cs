using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
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
    private sealed record CheckpointState(
        string BaseModel, string Method, int Rank, float Alpha, int ContextLength, int EpochsCompleted, int Steps,
        List<double> TrainLoss, List<double> ValidationLoss, double BestValidationLoss, int EpochsWithoutImprovement);

    public static FineTuneResult Run(FineTuneOptions options, IProgress<FineTuneProgress>? progress = null, CancellationToken cancellation = default)
    {
        Validate(options);
        var clock = Stopwatch.StartNew();
        var modelPath = Path.GetFullPath(options.ModelPath);
        var outputPath = Path.GetFullPath(options.OutputPath);
        var checkpointDir = Path.GetFullPath(options.EffectiveCheckpointPath);

        var windows = TrainingData.Build(modelPath, options.Texts, options.Pairs, options.ContextLength);
        var (train, validation) = Split(windows, options.ValidationSplit, options.Seed);
        var documentText = string.Join("\n", options.Texts.Where(t => !string.IsNullOrWhiteSpace(t)));
        double? perplexityBefore = options.MeasurePerplexity && documentText.Length > 0
            ? LlamaCppEvaluator.MeasurePerplexity(modelPath, null, documentText, options.ContextLength + 1, cancellation).Perplexity
            : null;

        using var model = new LlamaGraphModel(modelPath, options.Threads);
        foreach (var w in windows) model.CheckTokens(w.Tokens);
        using var lora = options.Method == FineTuneMethod.Lora
            ? new LoraWeights(model.Graph, model.Backend, options.Rank, options.Alpha, options.LoraTargets ?? LoraTargets.Default, options.Seed)
            : null;
        var parameters = lora is not null ? lora.Parameters.ToList() : FullParameters(model);
        foreach (var t in parameters) Ggml.ggml_set_param(t);
        long trainable = parameters.Sum(Ggml.ggml_nelements);

        var state = new CheckpointState(modelPath, options.Method.ToString(), options.Rank, options.Alpha, options.ContextLength, 0, 0, [], [], double.PositiveInfinity, 0);
        if (options.Resume) state = LoadCheckpoint(checkpointDir, state, model, lora, parameters);

        int batchesPerEpoch = (train.Count + options.BatchSize - 1) / options.BatchSize;
        int totalSteps = batchesPerEpoch * options.Epochs;
        var optParams = (GgmlOptimizerParams*)NativeMemory.AllocZeroed((nuint)sizeof(GgmlOptimizerParams));
        var opt = Ggml.ggml_opt_init(new GgmlOptParams
        {
            BackendSched = model.Scheduler,
            LossType = Ggml.LossCrossEntropy,
            BuildType = Ggml.BuildTypeOpt,
            OptPeriod = 1,
            GetOptParams = Ggml.Export("libggml-base.so", "ggml_opt_get_constant_optimizer_params"),
            GetOptParamsUserData = (IntPtr)optParams,
            Optimizer = Ggml.OptimizerAdamW,
        });
        float[]? best = null;
        long tokensTrained = 0;
        double trainSeconds = 0;
        bool stoppedEarly = false;
        try
        {
            var random = new Random(options.Seed);
            int step = state.Steps;
            for (int epoch = 0; epoch < options.Epochs; epoch++)
            {
                // Shuffles are drawn for skipped epochs too, so a resumed run sees the same order as an uninterrupted one.
                var order = Enumerable.Range(0, train.Count).OrderBy(_ => random.Next()).ToArray();
                if (epoch < state.EpochsCompleted) continue;
                double lossSum = 0;
                int lossRows = 0;
                for (int b = 0; b < batchesPerEpoch; b++)
                {
                    if (cancellation.IsCancellationRequested)
                    {
                        // The interrupted epoch restarts on resume, from the weights as they are now.
                        SaveCheckpoint(checkpointDir, state, model, lora, parameters);
                        cancellation.ThrowIfCancellationRequested();
                    }
                    var batch = order.Skip(b * options.BatchSize).Take(options.BatchSize).Select(i => train[i]).ToList();
                    float lr = LearningRate(options, step, totalSteps);
                    *optParams = new GgmlOptimizerParams
                    {
                        AdamAlpha = lr, AdamBeta1 = 0.9f, AdamBeta2 = 0.999f, AdamEps = 1e-8f, AdamWeightDecay = options.WeightDecay,
                        SgdAlpha = lr, SgdWeightDecay = options.WeightDecay,
                    };
                    var started = Stopwatch.GetTimestamp();
                    var (loss, rows) = Evaluate(model, opt, lora, batch, train: true);
                    trainSeconds += Stopwatch.GetElapsedTime(started).TotalSeconds;
                    tokensTrained += batch.Sum(w => w.Length);
                    lossSum += loss * rows;
                    lossRows += rows;
                    step++;
                    double tps = tokensTrained / Math.Max(trainSeconds, 1e-9);
                    var remainingSteps = totalSteps - step;
                    progress?.Report(new FineTuneProgress("train", epoch + 1, options.Epochs, step, totalSteps, loss, state.ValidationLoss.LastOrDefault() is var v && v > 0 ? v : null,
                        lr, tps, clock.Elapsed, TimeSpan.FromSeconds(trainSeconds / Math.Max(1, step - state.Steps) * remainingSteps)));
                }
                double trainLoss = lossSum / Math.Max(1, lossRows);
                double? validationLoss = validation.Count > 0 ? EvaluateAll(model, opt, lora, validation, options.BatchSize) : null;
                var trainLosses = state.TrainLoss.Append(trainLoss).ToList();
                var validationLosses = validationLoss is null ? state.ValidationLoss : state.ValidationLoss.Append(validationLoss.Value).ToList();
                int without = state.EpochsWithoutImprovement;
                double bestLoss = state.BestValidationLoss;
                if (validationLoss is not null)
                {
                    if (validationLoss < bestLoss) { bestLoss = validationLoss.Value; without = 0; if (options.EarlyStoppingPatience > 0) best = Snapshot(parameters); }
                    else without++;
                }
                state = state with
                {
                    EpochsCompleted = epoch + 1, Steps = step, TrainLoss = trainLosses, ValidationLoss = validationLosses,
                    BestValidationLoss = bestLoss, EpochsWithoutImprovement = without,
                };
                SaveCheckpoint(checkpointDir, state, model, lora, parameters);
                progress?.Report(new FineTuneProgress("epoch", epoch + 1, options.Epochs, step, totalSteps, trainLoss, validationLoss,
                    LearningRate(options, step, totalSteps), tokensTrained / Math.Max(trainSeconds, 1e-9), clock.Elapsed,
                    TimeSpan.FromSeconds(trainSeconds / Math.Max(1, step - 0) * (totalSteps - step))));
                if (options.EarlyStoppingPatience > 0 && without >= options.EarlyStoppingPatience)
                {
                    stoppedEarly = true;
                    break;
                }
            }
            if (stoppedEarly && best is not null) Restore(parameters, best);

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
                StoppedEarly = stoppedEarly,
                CheckpointPath = checkpointDir,
            };
        }
        finally
        {
            Ggml.ggml_opt_free(opt);
            NativeMemory.Free(optParams);
        }
    }

    private static void Validate(FineTuneOptions o)
    {
        if (string.IsNullOrWhiteSpace(o.ModelPath)) throw new ArgumentException("A model path is required.", nameof(o.ModelPath));
        if (!File.Exists(o.ModelPath)) throw new FileNotFoundException($"Model file '{o.ModelPath}' does not exist.", o.ModelPath);
        if (string.IsNullOrWhiteSpace(o.OutputPath)) throw new ArgumentException("An output path is required.", nameof(o.OutputPath));
        if (Path.GetFullPath(o.OutputPath) == Path.GetFullPath(o.ModelPath))
            throw new ArgumentException("The output path must differ from the base model: the base model is never modified.", nameof(o.OutputPath));
        if (o.Epochs < 1) throw new ArgumentOutOfRangeException(nameof(o.Epochs), o.Epochs, "Epochs must be at least 1.");
        if (o.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(o.BatchSize), o.BatchSize, "The batch size must be at least 1.");
        if (o.ContextLength is < 2 or > 32768) throw new ArgumentOutOfRangeException(nameof(o.ContextLength), o.ContextLength, "The context length must be between 2 and 32768.");
        if (o.ValidationSplit is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(o.ValidationSplit), o.ValidationSplit, "The validation split must be in [0, 1).");
        if (o.WarmupFraction is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(o.WarmupFraction), o.WarmupFraction, "The warm-up fraction must be in [0, 1).");
        if (!(o.EffectiveLearningRate > 0) || o.EffectiveLearningRate > 1) throw new ArgumentOutOfRangeException(nameof(o.LearningRate), o.LearningRate, "The learning rate must be in (0, 1].");
        if (o.WeightDecay is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(o.WeightDecay), o.WeightDecay, "Weight decay must be in [0, 1].");
        if (o.Method == FineTuneMethod.Full && o.Merge) throw new ArgumentException("-Merge applies to LoRA only; Full already writes a complete model.");
        if (o.Quantization is not null && o.Method == FineTuneMethod.Lora && !o.Merge)
            throw new ArgumentException("Quantization applies to a written model (Full, or LoRA with Merge), not to an adapter.");
        if (o.Texts.Count == 0 && o.Pairs.Count == 0) throw new ArgumentException("There is nothing to train on: give texts or prompt/response pairs.");
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

    internal static float LearningRate(FineTuneOptions o, int step, int totalSteps)
    {
        float peak = o.EffectiveLearningRate;
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

    private static List<IntPtr> FullParameters(LlamaGraphModel model)
    {
        var tensors = model.File.Tensors().ToList();
        var notF32 = tensors.Where(t => Ggml.TypeOf(t) != (int)GgmlType.F32).Select(Ggml.NameOf).ToList();
        if (notF32.Count > 0)
            throw new NotSupportedException($"Full fine-tuning needs an all-F32 model; '{notF32[0]}' and {notF32.Count - 1} more tensors are quantized or F16. Use LoRA (optionally with -Merge) instead.");
        return tensors;
    }

    /// <summary>One batch through the graph: forward (+ backward and AdamW step when training). Returns mean NLL and scored rows.</summary>
    private static (double Loss, int Rows) Evaluate(LlamaGraphModel model, IntPtr opt, LoraWeights? lora, IReadOnlyList<TrainingWindow> batch, bool train)
    {
        int length = batch.Max(w => w.Length), sequences = batch.Count, n = length * sequences;
        var tokens = new int[n];
        var positions = new int[n];
        var rows = new List<int>();
        var targets = new List<int>();
        for (int s = 0; s < sequences; s++)
        {
            var w = batch[s];
            for (int i = 0; i < length; i++)
            {
                // Short windows are padded at the end; causal attention keeps padding out of earlier positions.
                tokens[s * length + i] = i < w.Length ? w.Tokens[i] : 0;
                positions[s * length + i] = i;
                if (i < w.Length && w.Scored[i]) { rows.Add(s * length + i); targets.Add(w.Tokens[i + 1]); }
            }
        }
        if (rows.Count == 0) return (0, 0);

        var ctx = model.NewComputeContext();
        try
        {
            var tokenTensor = Ggml.ggml_new_tensor_1d(ctx, (int)GgmlType.I32, n);
            var positionTensor = Ggml.ggml_new_tensor_1d(ctx, (int)GgmlType.I32, n);
            var rowTensor = Ggml.ggml_new_tensor_1d(ctx, (int)GgmlType.I32, rows.Count);
            Ggml.ggml_set_input(positionTensor);
            Ggml.ggml_set_input(rowTensor);
            var logits = model.Graph.BuildLogits(ctx, tokenTensor, positionTensor, rowTensor, length, sequences, lora);
            var graph = Ggml.ggml_new_graph_custom(ctx, (nuint)model.Graph.GraphSize, true);
            Ggml.ggml_build_forward_expand(graph, logits);
            Ggml.ggml_opt_prepare_alloc(opt, ctx, graph, tokenTensor, logits);
            Ggml.ggml_opt_alloc(opt, train);
            // With graphs rebuilt every step ggml_opt accumulates gradients and never clears them itself (it only
            // does so for gradient accumulation over several steps): zero them, so each step uses its own batch.
            if (train) Ggml.ggml_opt_reset(opt, false);

            fixed (int* p = tokens) Ggml.ggml_backend_tensor_set(tokenTensor, p, 0, (nuint)(n * 4));
            fixed (int* p = positions) Ggml.ggml_backend_tensor_set(positionTensor, p, 0, (nuint)(n * 4));
            var rowArray = rows.ToArray();
            fixed (int* p = rowArray) Ggml.ggml_backend_tensor_set(rowTensor, p, 0, (nuint)(rowArray.Length * 4));
            int vocab = model.Hyper.VocabularySize;
            var labels = new float[(long)rows.Count * vocab];
            for (int r = 0; r < targets.Count; r++) labels[(long)r * vocab + targets[r]] = 1f;
            fixed (float* p = labels) Ggml.ggml_backend_tensor_set(Ggml.ggml_opt_labels(opt), p, 0, (nuint)(labels.LongLength * 4));

            Ggml.ggml_opt_eval(opt, IntPtr.Zero);
            float loss;
            Ggml.ggml_backend_tensor_get(Ggml.ggml_opt_loss(opt), &loss, 0, 4);
            return (loss, rows.Count);
        }
        finally
        {
            Ggml.ggml_free(ctx);
        }
    }

    private static double EvaluateAll(LlamaGraphModel model, IntPtr opt, LoraWeights? lora, List<TrainingWindow> windows, int batchSize)
    {
        double sum = 0;
        int rows = 0;
        for (int i = 0; i < windows.Count; i += batchSize)
        {
            var (loss, n) = Evaluate(model, opt, lora, windows.Skip(i).Take(batchSize).ToList(), train: false);
            sum += loss * n;
            rows += n;
        }
        return sum / Math.Max(1, rows);
    }

    private static float[] Snapshot(List<IntPtr> parameters) => parameters.SelectMany(LoraWeights.Get).ToArray();

    private static void Restore(List<IntPtr> parameters, float[] values)
    {
        long offset = 0;
        foreach (var t in parameters)
        {
            long count = Ggml.ggml_nelements(t);
            LoraWeights.Set(t, values.AsSpan((int)offset, (int)count).ToArray());
            offset += count;
        }
    }

    // ---- checkpoints: trainable tensors (GGUF, F32) + state.json, both written to temp names then renamed ----

    private const string StateFile = "state.json", WeightsFile = "trainable.gguf";

    private static void SaveCheckpoint(string dir, CheckpointState state, LlamaGraphModel model, LoraWeights? lora, List<IntPtr> parameters)
    {
        Directory.CreateDirectory(dir);
        var writer = new GgufWriter().Add("general.architecture", model.Hyper.Architecture).Add("general.type", "ckllm-checkpoint");
        foreach (var t in parameters) writer.AddTensor(Ggml.NameOf(t), Ggml.Shape(t)[..Math.Max(1, Dimensions(t))], LoraWeights.Get(t));
        writer.WriteTo(Path.Combine(dir, WeightsFile));
        var json = JsonSerializer.Serialize(state, FineTuneJobProtocol.Json); // named literals: a diverged loss is NaN
        var temp = Path.Combine(dir, StateFile + ".tmp");
        File.WriteAllText(temp, json);
        File.Move(temp, Path.Combine(dir, StateFile), overwrite: true);
    }

    private static int Dimensions(IntPtr t)
    {
        var shape = Ggml.Shape(t);
        int d = 4;
        while (d > 1 && shape[d - 1] == 1) d--;
        return d;
    }

    private static CheckpointState LoadCheckpoint(string dir, CheckpointState fresh, LlamaGraphModel model, LoraWeights? lora, List<IntPtr> parameters)
    {
        var statePath = Path.Combine(dir, StateFile);
        var weightsPath = Path.Combine(dir, WeightsFile);
        if (!File.Exists(statePath) || !File.Exists(weightsPath))
            throw new FileNotFoundException($"There is no checkpoint to resume from in '{dir}'.", statePath);
        var state = JsonSerializer.Deserialize<CheckpointState>(File.ReadAllText(statePath), FineTuneJobProtocol.Json)
                    ?? throw new InvalidDataException($"The checkpoint state '{statePath}' is empty.");
        if (state.BaseModel != fresh.BaseModel || state.Method != fresh.Method || state.Rank != fresh.Rank || state.ContextLength != fresh.ContextLength)
            throw new InvalidOperationException($"The checkpoint in '{dir}' was made for {state.Method} (rank {state.Rank}, context {state.ContextLength}) on '{state.BaseModel}'; it cannot resume this run.");
        using var file = GgufModelFile.Open(weightsPath, IntPtr.Zero);
        using var stream = File.OpenRead(weightsPath);
        long dataOffset = (long)Ggml.gguf_get_data_offset(file.Gguf);
        foreach (var t in parameters)
        {
            var name = Ggml.NameOf(t);
            long id = Ggml.gguf_find_tensor(file.Gguf, name);
            if (id < 0) throw new InvalidDataException($"The checkpoint '{weightsPath}' has no tensor '{name}'.");
            var bytes = new byte[Ggml.ggml_nbytes(t)];
            if ((long)Ggml.gguf_get_tensor_size(file.Gguf, id) != bytes.Length) throw new InvalidDataException($"Checkpoint tensor '{name}' has the wrong size.");
            stream.Position = dataOffset + (long)Ggml.gguf_get_tensor_offset(file.Gguf, id);
            stream.ReadExactly(bytes);
            fixed (byte* p = bytes) Ggml.ggml_backend_tensor_set(t, p, 0, (nuint)bytes.Length);
        }
        return state;
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
