using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using CkLlm.Engine.Training.Native;

namespace CkLlm.Engine.Training;

/// <summary>Time of the graph nodes of one kind: phase (forward / backward), ggml op, what its first operand is
/// (a frozen or trained weight, a transposed weight copy, a LoRA matrix, an activation) and the operand shapes.</summary>
public sealed record OpTime(string Phase, string Op, string Operand, string Shapes, int Nodes, double Milliseconds)
{
    /// <summary>The kind of work (<see cref="StepProfile.Parts"/>).</summary>
    public string Part { get; init; } = "";
}

/// <summary>
/// One configuration's training step next to a forward pass of the same batches (same model, threads and process),
/// and where a step's time goes. Rates are measured without instrumentation; <see cref="Ops"/> comes from separate
/// steps timed node by node (each node then runs as its own graph, so the sum is a little above a plain step).
/// <see cref="FirstStepMilliseconds"/> is the very first step, which builds the graphs and lets the scheduler allocate.
/// </summary>
public sealed record StepProfile(
    string Method, int ContextLength, int BatchSize, int Threads, int Repeats,
    double ForwardTokensPerSecond, double TrainTokensPerSecond,
    double ForwardMilliseconds, double StepMilliseconds,
    double PrepareMilliseconds, double GraphMilliseconds, double OptimizerMilliseconds, double TransposeMilliseconds,
    double FirstStepMilliseconds,
    IReadOnlyList<OpTime> Ops)
{
    /// <summary>
    /// Per-step milliseconds by kind of work, in a fixed order: the frozen or trained weights' products forward and
    /// backward (input gradients), weight gradients (Full), LoRA's rank-r products, attention's products, the
    /// cross-entropy over the vocabulary, every other node, and outside the graph the optimizer, the refresh of the
    /// transposed weights the next step's input gradients read (Full) and input preparation.
    /// </summary>
    public IReadOnlyList<(string Part, double Milliseconds)> Parts()
    {
        var parts = new[]
        {
            "forward: weight products", "forward: LoRA products", "forward: attention products", "forward: other ops",
            "backward: input gradients through weights", "backward: weight gradients", "backward: LoRA products",
            "backward: attention products", "backward: other ops", "cross-entropy (forward + backward)",
        }.ToDictionary(p => p, _ => 0.0);
        foreach (var o in Ops) parts[o.Part] += o.Milliseconds;
        return [.. parts.Select(kv => (kv.Key, kv.Value)), ("optimizer (AdamW)", OptimizerMilliseconds),
            ("transposed weights, refreshed after the optimizer (Full)", TransposeMilliseconds), ("inputs and labels", PrepareMilliseconds)];
    }

    /// <summary>Node time summed by phase and op (all operands and shapes together), largest first.</summary>
    public IEnumerable<OpTime> ByOp() => Ops.GroupBy(o => (o.Phase, o.Op, o.Operand))
        .Select(g => new OpTime(g.Key.Phase, g.Key.Op, g.Key.Operand, "", g.Sum(o => o.Nodes), g.Sum(o => o.Milliseconds)) { Part = g.First().Part })
        .OrderByDescending(o => o.Milliseconds);
}

internal static unsafe class StepProfiler
{
    /// <summary>
    /// Builds the current path's graphs for <paramref name="method"/> (LoRA with the run defaults' rank, alpha and
    /// targets), warms them up, then alternates blocks of forward-only evaluations and optimizer steps over the same
    /// batches, <paramref name="repeats"/> times (best block of each kind), and finally times one step node by node.
    /// </summary>
    public static StepProfile Measure(string modelPath, string text, FineTuneMethod method, int contextLength, int batchSize, int threads, int repeats,
        bool rewriteProducts = true)
    {
        if (repeats < 1) throw new ArgumentOutOfRangeException(nameof(repeats), repeats, "At least one repeat.");
        modelPath = Path.GetFullPath(modelPath);
        var defaults = new FineTuneOptions { ModelPath = modelPath, OutputPath = "" };
        var windows = TrainingData.Build(modelPath, [text], [], contextLength);
        var batches = windows.Chunk(batchSize).Where(b => b.Length == batchSize).Take(3).Select(b => (IReadOnlyList<TrainingWindow>)b).ToList();
        if (batches.Count == 0) throw new ArgumentException($"The text gives fewer than {batchSize} windows of {contextLength} tokens.", nameof(text));
        int tokens = batches.Sum(b => b.Sum(w => w.Length));

        using var model = new LlamaGraphModel(modelPath, threads);
        using var lora = method == FineTuneMethod.Lora
            ? new LoraWeights(model.Graph, model.Backend, defaults.Rank, defaults.Alpha, FineTunePlan.DefaultLoraTargets(model.Graph.HasOutputTensor), defaults.Seed)
            : null;
        var parameters = FineTuner.TrainableParameters(model, lora);
        using var steps = new ReusedGraphSteps(model, lora, parameters, rewriteProducts);
        const float learningRate = 1e-5f;

        void Forward() { foreach (var b in batches) steps.Evaluate(b); }
        void Train() { foreach (var b in batches) steps.Train([b], learningRate, 0); }
        // Warm-up builds every shape's graphs and lets the scheduler size its buffers (timed: the one-time cost).
        var firstWatch = Stopwatch.StartNew();
        steps.Train([batches[0]], learningRate, 0);
        double firstStep = firstWatch.Elapsed.TotalMilliseconds;
        Train();
        Forward();
        double bestForward = double.MaxValue, bestTrain = double.MaxValue;
        var parts = steps.Times = default;
        for (int r = 0; r < repeats; r++)
        {
            var watch = Stopwatch.StartNew();
            Forward();
            bestForward = Math.Min(bestForward, watch.Elapsed.TotalSeconds);
            steps.Times = default;
            watch.Restart();
            Train();
            double seconds = watch.Elapsed.TotalSeconds;
            if (seconds < bestTrain) { bestTrain = seconds; parts = steps.Times; }
        }

        var ops = TimeNodes(model, steps, lora, Train);
        double perStep = 1000.0 / batches.Count;
        return new StepProfile(method.ToString(), contextLength, batchSize, model.Threads, repeats,
            tokens / bestForward, tokens / bestTrain, bestForward * perStep, bestTrain * perStep,
            parts.Prepare * perStep, parts.Graph * perStep, parts.Optimizer * perStep, parts.Transposes * perStep, firstStep,
            ops.Select(o => o with { Milliseconds = o.Milliseconds / batches.Count }).ToList());
    }

    private static List<OpTime> TimeNodes(LlamaGraphModel model, ReusedGraphSteps steps, LoraWeights? lora, Action train)
    {
        var timer = new NodeTimer
        {
            ForwardNodes = steps.ForwardNodes().ToHashSet(),
            Weights = model.File.Tensors().ToHashSet(),
            Transposed = steps.TransposedCopies.Values.ToHashSet(),
            Lora = lora?.Parameters.ToHashSet() ?? [],
        };
        var handle = GCHandle.Alloc(timer);
        try
        {
            Ggml.ggml_backend_sched_set_eval_callback(model.Scheduler, (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, byte, IntPtr, byte>)&OnNode, GCHandle.ToIntPtr(handle));
            train();
        }
        finally
        {
            Ggml.ggml_backend_sched_set_eval_callback(model.Scheduler, IntPtr.Zero, IntPtr.Zero);
            handle.Free();
        }
        return timer.Times.Select(kv => new OpTime(kv.Key.Phase, kv.Key.Op, kv.Key.Operand, kv.Key.Shapes, kv.Value.Nodes, kv.Value.Seconds * 1000) { Part = kv.Key.Part })
            .OrderByDescending(o => o.Milliseconds).ToList();
    }

    /// <summary>Asked before every node whether it is to be observed (always: each node then computes as its own
    /// graph) and called after it ran.</summary>
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static byte OnNode(IntPtr tensor, byte ask, IntPtr user)
    {
        var timer = (NodeTimer)GCHandle.FromIntPtr(user).Target!;
        // Asked right before the node computes; told right after.
        if (ask != 0) timer.Mark = Stopwatch.GetTimestamp();
        else timer.Add(tensor, Stopwatch.GetElapsedTime(timer.Mark).TotalSeconds);
        return 1;
    }

    private sealed class NodeTimer
    {
        public required HashSet<IntPtr> ForwardNodes, Weights, Transposed, Lora;
        public long Mark;
        public readonly Dictionary<(string Phase, string Op, string Operand, string Shapes, string Part), (int Nodes, double Seconds)> Times = new();

        public void Add(IntPtr tensor, double seconds)
        {
            var t = (GgmlTensor*)tensor;
            var src0 = (IntPtr)t->Src[0];
            var src1 = (IntPtr)t->Src[1];
            string phase = ForwardNodes.Contains(tensor) ? "forward" : "backward";
            string op = Marshal.PtrToStringUTF8(Ggml.ggml_op_desc(tensor)) ?? "?";
            string operand = Operand(src0);
            var key = (phase, op, operand, $"{Dims(src0)} x {Dims(src1)} -> {Dims(tensor)}", Part(phase, op, operand, tensor, src0, src1));
            Times[key] = Times.TryGetValue(key, out var v) ? (v.Nodes + 1, v.Seconds + seconds) : (1, seconds);
        }

        private string Operand(IntPtr src)
        {
            if (src == IntPtr.Zero) return "";
            if (Weights.Contains(src)) return "weight";
            if (Transposed.Contains(src)) return "weight (transposed copy)";
            if (Lora.Contains(src)) return "lora";
            // A transposed copy made in the graph (Full's weights change every step): cont(transpose(W)).
            var copied = (IntPtr)((GgmlTensor*)src)->Src[0];
            if (copied != IntPtr.Zero && ((GgmlTensor*)copied)->ViewSrc is var viewed && viewed != IntPtr.Zero && Weights.Contains(viewed))
                return "weight (transposed copy)";
            return "activation";
        }

        private static string Part(string phase, string op, string operand, IntPtr tensor, IntPtr src0, IntPtr src1)
        {
            if (op.StartsWith("CROSS_ENTROPY", StringComparison.Ordinal)) return "cross-entropy (forward + backward)";
            if (op is not ("MUL_MAT" or "OUT_PROD")) return phase + ": other ops";
            IntPtr[] all = [tensor, src0, src1];
            if (all.Any(x => Ggml.Shape(x) is [_, _, var a, var b] && a * b > 1)) return phase + ": attention products";
            if (operand == "lora" || all.Any(x => Ggml.Shape(x) is [var a, var b, _, _] && Math.Min(a, b) <= TrainingProducts.ShortDimension))
                return phase + ": LoRA products";
            if (operand.StartsWith("weight", StringComparison.Ordinal))
                return phase == "forward" ? "forward: weight products" : "backward: input gradients through weights";
            return phase == "forward" ? "forward: weight products" : "backward: weight gradients";
        }

        private static string Dims(IntPtr tensor)
        {
            if (tensor == IntPtr.Zero) return "-";
            var s = Ggml.Shape(tensor);
            int last = 3;
            while (last > 0 && s[last] == 1) last--;
            return "[" + string.Join(",", s.Take(last + 1)) + "]";
        }
    }
}
