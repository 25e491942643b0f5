using System.Diagnostics;
using System.Runtime.InteropServices;
using CkLlm.Engine.Model.Gguf;
using CkLlm.Engine.Training.Native;

namespace CkLlm.Engine.Training;

/// <summary>Optimizer steps and evaluations over batches of training windows.</summary>
internal interface ITrainingSteps : IDisposable
{
    /// <summary>One AdamW update from the gradients of <paramref name="microBatches"/> (gradient accumulation:
    /// each micro-batch's mean loss weighs 1/count). Returns the mean loss and the scored rows.</summary>
    (double Loss, int Rows) Train(IReadOnlyList<IReadOnlyList<TrainingWindow>> microBatches, float learningRate, float weightDecay);

    /// <summary>Forward pass only: mean loss over the scored rows of <paramref name="batch"/>.</summary>
    (double Loss, int Rows) Evaluate(IReadOnlyList<TrainingWindow> batch);
}

/// <summary>A batch flattened to the graph's inputs: tokens and positions per slot (short windows padded at the
/// end), the flattened slots that are scored, and each scored slot's target token.</summary>
internal sealed record EncodedBatch(int[] Tokens, int[] Positions, int[] Rows, int[] Targets, int Length, int Sequences)
{
    public static EncodedBatch Encode(IReadOnlyList<TrainingWindow> batch)
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
                // Causal attention keeps the end padding out of earlier positions, and padding is never scored.
                tokens[s * length + i] = i < w.Length ? w.Tokens[i] : 0;
                positions[s * length + i] = i;
                if (i < w.Length && w.Scored[i]) { rows.Add(s * length + i); targets.Add(w.Tokens[i + 1]); }
            }
        }
        return new EncodedBatch(tokens, positions, rows.ToArray(), targets.ToArray(), length, sequences);
    }

    /// <summary>Dense one-hot labels [rows x vocabulary] (only this batch's rows: memory is bounded by one batch).</summary>
    public float[] Labels(int vocabulary)
    {
        var labels = new float[(long)Rows.Length * vocabulary];
        for (int r = 0; r < Targets.Length; r++) labels[(long)r * vocabulary + Targets[r]] = 1f;
        return labels;
    }

    public static unsafe void Set(IntPtr tensor, int[] values)
    {
        fixed (int* p = values) Ggml.ggml_backend_tensor_set(tensor, p, 0, (nuint)(values.Length * 4L));
    }

    public static unsafe void Set(IntPtr tensor, float[] values)
    {
        fixed (float* p = values) Ggml.ggml_backend_tensor_set(tensor, p, 0, (nuint)(values.LongLength * 4));
    }
}

/// <summary>
/// Training graphs built once per batch shape and reused for every step: the forward graph with its
/// cross-entropy loss, the backward graph (gradients accumulate into static tensors) and one AdamW graph over all
/// parameters, with moments that persist across shapes. Inputs and labels live in static buffers, so a shape's
/// graph is only re-allocated by the scheduler when another graph ran in between (validation, another shape).
/// </summary>
internal sealed unsafe class ReusedGraphSteps : ITrainingSteps
{
    private const int MaxCachedShapes = 4;
    private const float Beta1 = 0.9f, Beta2 = 0.999f, Epsilon = 1e-8f;

    private readonly LlamaGraphModel _model;
    private readonly LoraWeights? _lora;
    private readonly TransposedWeights? _transposed;
    private readonly Dictionary<IntPtr, IntPtr> _accumulators = new();
    private readonly Dictionary<(int Length, int Sequences, int Rows, int MicroBatches), ShapeGraph> _shapes = new();
    private readonly LinkedList<(int, int, int, int)> _recent = new();
    private IntPtr _stateContext, _stateBuffer, _accumulatorContext, _accumulatorBuffer, _stepContext, _flatContext;
    private readonly IntPtr _stepGraph, _adamParams;
    private IntPtr _allocated;
    private int _iteration = 1;

    /// <summary>Whether the accumulators may hold a previous step's gradients (they start cleared).</summary>
    private bool _accumulatorsUsed;

    private readonly bool _rewriteProducts;

    /// <param name="rewriteProducts">Compute matrix products with the faster kernel (<see cref="TrainingProducts"/>);
    /// off only for tests that compare against ggml's own graph.</param>
    public ReusedGraphSteps(LlamaGraphModel model, LoraWeights? lora, IReadOnlyList<IntPtr> parameters, bool rewriteProducts = true)
    {
        _model = model;
        _lora = lora;
        _rewriteProducts = rewriteProducts;
        try
        {
            nuint overhead = Ggml.ggml_tensor_overhead();
            _accumulatorContext = Ggml.ggml_init(new GgmlInitParams { MemSize = (nuint)(parameters.Count + 4) * overhead, NoAlloc = true });
            _stateContext = Ggml.ggml_init(new GgmlInitParams { MemSize = (nuint)(2 * parameters.Count + 4) * overhead, NoAlloc = true });
            nuint graphSize = (nuint)(4 * parameters.Count + 16);
            _stepContext = Ggml.ggml_init(new GgmlInitParams
            {
                MemSize = (nuint)(parameters.Count + 4) * overhead + Ggml.ggml_graph_overhead_custom(graphSize, false), NoAlloc = true,
            });
            // Accumulators, first moments and second moments each in parameter order, so that they can line up.
            IntPtr Like(IntPtr context, IntPtr p)
            {
                var shape = Ggml.Shape(p);
                return Ggml.ggml_new_tensor_4d(context, (int)GgmlType.F32, shape[0], shape[1], shape[2], shape[3]);
            }
            foreach (var p in parameters) _accumulators[p] = Like(_accumulatorContext, p);
            var firstMoments = parameters.Select(p => Like(_stateContext, p)).ToList();
            var secondMoments = parameters.Select(p => Like(_stateContext, p)).ToList();
            _adamParams = Ggml.ggml_new_tensor_1d(_stateContext, (int)GgmlType.F32, 7);
            _accumulatorBuffer = Allocate(_accumulatorContext, "gradient accumulators");
            _stateBuffer = Allocate(_stateContext, "AdamW moments");
            HugePages.Advise(_accumulatorBuffer);
            HugePages.Advise(_stateBuffer);
            Ggml.ggml_backend_buffer_clear(_accumulatorBuffer, 0);
            Ggml.ggml_backend_buffer_clear(_stateBuffer, 0);

            // The AdamW graph reads only static tensors, so it runs on the backend without the scheduler. One node over
            // all parameters when they lie back to back (LoRA's pairs: 142 nodes on the Medium preset become one).
            _stepGraph = Ggml.ggml_new_graph_custom(_stepContext, graphSize, false);
            var groups = new List<IReadOnlyList<IntPtr>> { parameters, parameters.Select(p => _accumulators[p]).ToList(), firstMoments, secondMoments };
            if (FlatViews(groups) is { } flat)
            {
                Ggml.ggml_set_param(flat[0]);
                Ggml.ggml_build_forward_expand(_stepGraph, Ggml.ggml_opt_step_adamw(_stepContext, flat[0], flat[1], flat[2], flat[3], _adamParams));
                FusedOptimizer = true;
            }
            else
            {
                for (int i = 0; i < parameters.Count; i++)
                    Ggml.ggml_build_forward_expand(_stepGraph, Ggml.ggml_opt_step_adamw(_stepContext, parameters[i], _accumulators[parameters[i]],
                        firstMoments[i], secondMoments[i], _adamParams));
            }

            // The backward mul_mats read the projections transposed (TrainingProducts): LoRA's frozen base is
            // transposed once, Full's weights again after every optimizer step (Refresh in Train).
            if (rewriteProducts)
                _transposed = new TransposedWeights(model.Backend, model.Graph.ProjectionWeights(), model.Threads);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>True when one AdamW node updates every parameter (<see cref="FlatViews"/>).</summary>
    internal bool FusedOptimizer { get; }

    /// <summary>
    /// One 2-D F32 tensor per group over the memory of all its tensors, when every group's tensors are F32,
    /// contiguous, in one buffer, back to back with no gap and at the same offsets as the first group's (a gap could
    /// hold a tensor that is not trained, which AdamW's weight decay would change). Rows let ggml split the update
    /// over its threads. Null when the layouts differ.
    /// </summary>
    private IntPtr[]? FlatViews(IReadOnlyList<IReadOnlyList<IntPtr>> groups)
    {
        long bytes = 0;
        foreach (var group in groups)
        {
            var first = (GgmlTensor*)group[0];
            long offset = 0;
            foreach (var tensor in group)
            {
                var t = (GgmlTensor*)tensor;
                if (t->Type != (int)GgmlType.F32 || t->Buffer != first->Buffer || t->ViewSrc != IntPtr.Zero || t->Data == IntPtr.Zero
                    || t->Nb[0] != 4 || (long)t->Data - (long)first->Data != offset) return null;
                offset += (long)Ggml.ggml_nbytes(tensor);
            }
            if (bytes != 0 && offset != bytes) return null;
            bytes = offset;
        }
        long elements = bytes / 4;
        long row = new long[] { 4096, 1024, 256, 64, 16, 4, 1 }.First(r => elements % r == 0);
        _flatContext = Ggml.ggml_init(new GgmlInitParams { MemSize = (nuint)(groups.Count + 1) * Ggml.ggml_tensor_overhead(), NoAlloc = true });
        return groups.Select(group =>
        {
            var flat = Ggml.ggml_new_tensor_2d(_flatContext, (int)GgmlType.F32, row, elements / row);
            var t = (GgmlTensor*)flat;
            t->Buffer = ((GgmlTensor*)group[0])->Buffer;
            t->Data = ((GgmlTensor*)group[0])->Data;
            return flat;
        }).ToArray();
    }

    private IntPtr Allocate(IntPtr context, string what)
    {
        var buffer = Ggml.ggml_backend_alloc_ctx_tensors(context, _model.Backend);
        return buffer != IntPtr.Zero ? buffer : throw new OutOfMemoryException($"Cannot allocate the {what}.");
    }

    public (double Loss, int Rows) Train(IReadOnlyList<IReadOnlyList<TrainingWindow>> microBatches, float learningRate, float weightDecay)
    {
        double lossSum = 0;
        int rows = 0;
        long mark = Stopwatch.GetTimestamp();
        foreach (var batch in microBatches)
        {
            var encoded = EncodedBatch.Encode(batch);
            if (encoded.Rows.Length == 0) continue;
            var shape = Shape(encoded, microBatches.Count);
            shape.Load(encoded, _model.Hyper.VocabularySize);
            // The later micro-batches add to what the first one left.
            if (rows == 0) ClearAccumulators(shape);
            Times.Prepare += Lap(ref mark);
            Compute(shape.Backward);
            _accumulatorsUsed = true;
            Times.Graph += Lap(ref mark);
            var loss = shape.ReadLoss();
            lossSum += loss * encoded.Rows.Length;
            rows += encoded.Rows.Length;
        }
        if (rows == 0) return (0, 0);

        var adam = new[]
        {
            learningRate, Beta1, Beta2, Epsilon, weightDecay,
            1f / (1f - MathF.Pow(Beta1, _iteration)), 1f / (1f - MathF.Pow(Beta2, _iteration)),
        };
        EncodedBatch.Set(_adamParams, adam);
        int status = Ggml.ggml_backend_graph_compute(_model.Backend, _stepGraph);
        if (status != 0) throw new InvalidOperationException($"The AdamW step failed with ggml status {status}.");
        _iteration++;
        Times.Optimizer += Lap(ref mark);
        if (_lora is null && _transposed is not null)
        {
            _transposed.Refresh();
            Times.Transposes += Lap(ref mark);
        }
        return (lossSum / rows, rows);
    }

    /// <summary>
    /// Zeroes the accumulators <paramref name="shape"/>'s backward graph adds to, when a previous graph left values in
    /// them; those it writes whole (<see cref="GradientWrites"/>) are left as they are.
    /// </summary>
    private void ClearAccumulators(ShapeGraph shape)
    {
        if (!_accumulatorsUsed) return;
        if (shape.Written.Count == 0) Ggml.ggml_backend_buffer_clear(_accumulatorBuffer, 0);
        else
            foreach (var accumulator in _accumulators.Values)
                if (!shape.Written.Contains(accumulator)) Ggml.ggml_backend_tensor_memset(accumulator, 0, 0, Ggml.ggml_nbytes(accumulator));
        _accumulatorsUsed = false;
    }

    /// <summary>Where <see cref="Train"/>'s time went so far (seconds): preparing and loading inputs (clearing the
    /// accumulators that need it, building a new shape's graphs), the forward + backward graph (the scheduler's
    /// allocation included), the AdamW step, and the refresh of the transposed weights (Full).</summary>
    internal (double Prepare, double Graph, double Optimizer, double Transposes) Times;

    private static double Lap(ref long mark)
    {
        long now = Stopwatch.GetTimestamp();
        double seconds = Stopwatch.GetElapsedTime(mark, now).TotalSeconds;
        mark = now;
        return seconds;
    }

    /// <summary>The nodes of every forward graph built so far (the backward graphs start with them).</summary>
    internal IEnumerable<IntPtr> ForwardNodes() => _shapes.Values.SelectMany(s =>
        Enumerable.Range(0, Ggml.ggml_graph_n_nodes(s.Forward)).Select(i => Ggml.ggml_graph_node(s.Forward, i)));

    /// <summary>The weights' transposed copies the backward graphs read, by weight (none when products are not rewritten).</summary>
    internal IReadOnlyDictionary<IntPtr, IntPtr> TransposedCopies => _transposed?.Copies ?? new Dictionary<IntPtr, IntPtr>();

    /// <summary>Products computed by another kernel (<see cref="TrainingProducts"/>), over all shapes built so far.</summary>
    internal ProductRewrites Rewrites => _shapes.Values.Aggregate(new ProductRewrites(), (sum, s) => new ProductRewrites(
        sum.OutProdsAsMulMats + s.Rewrites.OutProdsAsMulMats, sum.NarrowMulMatsAsOutProds + s.Rewrites.NarrowMulMatsAsOutProds,
        sum.NarrowOutProdsTransposed + s.Rewrites.NarrowOutProdsTransposed));

    /// <summary>Gradients of one batch's mean loss (no optimizer step), for tests that compare graphs.</summary>
    internal Dictionary<IntPtr, float[]> Gradients(IReadOnlyList<TrainingWindow> batch)
    {
        var encoded = EncodedBatch.Encode(batch);
        var shape = Shape(encoded, 1);
        shape.Load(encoded, _model.Hyper.VocabularySize);
        ClearAccumulators(shape);
        Compute(shape.Backward);
        _accumulatorsUsed = true;
        return _accumulators.ToDictionary(kv => kv.Key, kv => LoraWeights.Get(kv.Value));
    }

    /// <summary>The gradient accumulators, by parameter.</summary>
    internal IReadOnlyDictionary<IntPtr, IntPtr> Accumulators => _accumulators;

    /// <summary>Accumulators the backward graphs built so far write whole instead of adding to (<see cref="GradientWrites"/>).</summary>
    internal int WrittenAccumulators => _shapes.Values.Sum(s => s.Written.Count);

    public (double Loss, int Rows) Evaluate(IReadOnlyList<TrainingWindow> batch)
    {
        var encoded = EncodedBatch.Encode(batch);
        if (encoded.Rows.Length == 0) return (0, 0);
        var shape = Shape(encoded, 1);
        shape.Load(encoded, _model.Hyper.VocabularySize);
        Compute(shape.Forward);
        return (shape.ReadLoss(), encoded.Rows.Length);
    }

    private void Compute(IntPtr graph)
    {
        Allocate(graph);
        int status = Ggml.ggml_backend_sched_graph_compute(_model.Scheduler, graph);
        if (status != 0) throw new InvalidOperationException($"ggml graph compute failed with status {status}.");
    }

    /// <summary>Lets the scheduler allocate <paramref name="graph"/> unless it is the graph allocated last.</summary>
    private void Allocate(IntPtr graph)
    {
        var sched = _model.Scheduler;
        if (_allocated != graph)
        {
            Ggml.ggml_backend_sched_reset(sched);
            _allocated = IntPtr.Zero;
            ForgetAllocation(graph);
            if (!Ggml.ggml_backend_sched_alloc_graph(sched, graph)) throw new OutOfMemoryException("Cannot allocate the training graph.");
            _allocated = graph;
            AdviseComputeBuffer(graph);
        }
    }

    private IntPtr _advisedComputeBuffer;

    /// <summary>Huge pages for the scheduler's compute buffer (found through a computed node), advised again only when
    /// the scheduler has allocated a new one: before the graph first writes it.</summary>
    private void AdviseComputeBuffer(IntPtr graph)
    {
        int nodes = Ggml.ggml_graph_n_nodes(graph);
        for (int i = 0; i < nodes; i++)
        {
            var t = (GgmlTensor*)Ggml.ggml_graph_node(graph, i);
            if (t->Op == 0 || t->ViewSrc != IntPtr.Zero || t->Buffer == IntPtr.Zero) continue;
            if (t->Buffer != _advisedComputeBuffer) HugePages.Advise(_advisedComputeBuffer = t->Buffer);
            return;
        }
    }

    /// <summary>
    /// Clears the data pointers the scheduler gave this graph's computed nodes (and views) last time. The allocator
    /// treats a tensor with data as allocated, so without this a graph allocated again after another one (whose
    /// compute buffer may have been re-allocated, or which shares the forward nodes) would compute into stale
    /// memory. Parameters, weights and inputs (op NONE, static buffers) keep theirs; views get re-initialised from
    /// their source. (ggml_opt does the same by duplicating the graph before every allocation.)
    /// </summary>
    private static void ForgetAllocation(IntPtr graph)
    {
        int nodes = Ggml.ggml_graph_n_nodes(graph);
        for (int i = 0; i < nodes; i++)
        {
            var t = (GgmlTensor*)Ggml.ggml_graph_node(graph, i);
            if (t->Op == 0) continue;
            t->Data = IntPtr.Zero;
            t->Buffer = IntPtr.Zero;
        }
    }

    private ShapeGraph Shape(EncodedBatch batch, int microBatches)
    {
        var key = (batch.Length, batch.Sequences, batch.Rows.Length, microBatches);
        if (_shapes.TryGetValue(key, out var shape))
        {
            _recent.Remove(key);
            _recent.AddFirst(key);
            return shape;
        }
        if (_shapes.Count >= MaxCachedShapes)
        {
            var oldest = _recent.Last!.Value;
            _recent.RemoveLast();
            var evicted = _shapes[oldest];
            _shapes.Remove(oldest);
            if (_allocated == evicted.Forward || _allocated == evicted.Backward)
            {
                Ggml.ggml_backend_sched_reset(_model.Scheduler);
                _allocated = IntPtr.Zero;
            }
            evicted.Dispose();
        }
        shape = new ShapeGraph(_model, _lora, _accumulators, _transposed, batch, 1f / microBatches, _rewriteProducts);
        _shapes[key] = shape;
        _recent.AddFirst(key);
        return shape;
    }

    public void Dispose()
    {
        if (_allocated != IntPtr.Zero) { Ggml.ggml_backend_sched_reset(_model.Scheduler); _allocated = IntPtr.Zero; }
        foreach (var shape in _shapes.Values) shape.Dispose();
        _shapes.Clear();
        _transposed?.Dispose();
        if (_stepContext != IntPtr.Zero) { Ggml.ggml_free(_stepContext); _stepContext = IntPtr.Zero; }
        if (_flatContext != IntPtr.Zero) { Ggml.ggml_free(_flatContext); _flatContext = IntPtr.Zero; }
        if (_accumulatorBuffer != IntPtr.Zero) { Ggml.ggml_backend_buffer_free(_accumulatorBuffer); _accumulatorBuffer = IntPtr.Zero; }
        if (_stateBuffer != IntPtr.Zero) { Ggml.ggml_backend_buffer_free(_stateBuffer); _stateBuffer = IntPtr.Zero; }
        if (_accumulatorContext != IntPtr.Zero) { Ggml.ggml_free(_accumulatorContext); _accumulatorContext = IntPtr.Zero; }
        if (_stateContext != IntPtr.Zero) { Ggml.ggml_free(_stateContext); _stateContext = IntPtr.Zero; }
    }

    /// <summary>The graphs of one batch shape and their static inputs.</summary>
    private sealed class ShapeGraph : IDisposable
    {
        private IntPtr _context, _inputContext, _inputBuffer;
        private readonly IntPtr _tokens, _positions, _rows, _labels, _loss;
        private float[]? _labelScratch;
        private int[] _lastTargets = [];

        public IntPtr Forward { get; }
        public IntPtr Backward { get; }

        /// <summary>The accumulators <see cref="Backward"/> writes whole (one micro-batch per step).</summary>
        public HashSet<IntPtr> Written { get; } = [];

        /// <summary>Products computed by another kernel than ggml's default (<see cref="TrainingProducts"/>).</summary>
        public ProductRewrites Rewrites { get; }

        public ShapeGraph(LlamaGraphModel model, LoraWeights? lora, Dictionary<IntPtr, IntPtr> accumulators, TransposedWeights? transposed,
            EncodedBatch batch, float lossScale, bool rewriteProducts)
        {
            try
            {
                int n = batch.Tokens.Length, rows = batch.Rows.Length, vocabulary = model.Hyper.VocabularySize;
                _inputContext = Ggml.ggml_init(new GgmlInitParams { MemSize = 8 * Ggml.ggml_tensor_overhead(), NoAlloc = true });
                _tokens = Ggml.ggml_new_tensor_1d(_inputContext, (int)GgmlType.I32, n);
                _positions = Ggml.ggml_new_tensor_1d(_inputContext, (int)GgmlType.I32, n);
                _rows = Ggml.ggml_new_tensor_1d(_inputContext, (int)GgmlType.I32, rows);
                _labels = Ggml.ggml_new_tensor_2d(_inputContext, (int)GgmlType.F32, vocabulary, rows);
                var lossSeed = Ggml.ggml_new_tensor_1d(_inputContext, (int)GgmlType.F32, 1);
                foreach (var t in new[] { _tokens, _positions, _rows, _labels, lossSeed }) Ggml.ggml_set_input(t);
                _inputBuffer = Ggml.ggml_backend_alloc_ctx_tensors(_inputContext, model.Backend);
                if (_inputBuffer == IntPtr.Zero) throw new OutOfMemoryException("Cannot allocate the training inputs.");
                // The loss gradient seeds the backward pass: 1/micro-batches averages accumulated gradients.
                EncodedBatch.Set(lossSeed, [lossScale]);

                _context = model.NewComputeContext();
                var logits = model.Graph.BuildLogits(_context, _tokens, _positions, _rows, batch.Length, batch.Sequences, lora);
                _loss = Ggml.ggml_cross_entropy_loss(_context, logits, _labels);
                Ggml.ggml_set_output(_loss);
                Ggml.ggml_set_loss(_loss);
                Forward = Ggml.ggml_new_graph_custom(_context, (nuint)model.Graph.GraphSize, true);
                Ggml.ggml_build_forward_expand(Forward, _loss);

                // Gradients of parameters go straight into the shared accumulators; the loss gets its seed.
                Backward = Ggml.ggml_graph_dup(_context, Forward, true);
                int nodes = Ggml.ggml_graph_n_nodes(Backward);
                var gradAccumulators = new IntPtr[nodes];
                for (int i = 0; i < nodes; i++)
                {
                    var node = Ggml.ggml_graph_node(Backward, i);
                    if (node == _loss) gradAccumulators[i] = lossSeed;
                    else if (accumulators.TryGetValue(node, out var accumulator)) gradAccumulators[i] = accumulator;
                }
                fixed (IntPtr* p = gradAccumulators) Ggml.ggml_build_backward_expand(_context, Backward, p);
                if (!rewriteProducts) return;
                (Backward, Rewrites) = TrainingProducts.Rewrite(_context, Backward, model.Graph.GraphSize, transposed?.Copies);
                // Without accumulation over micro-batches (loss scale 1) the gradients are written, not added.
                if (lossScale == 1f) (Backward, Written) = GradientWrites.Rewrite(_context, Backward, model.Graph.GraphSize, accumulators.Values);
                // The rewrite may have changed forward products too: the forward graph picks up their new operands.
                Forward = Ggml.ggml_new_graph_custom(_context, (nuint)model.Graph.GraphSize, false);
                Ggml.ggml_build_forward_expand(Forward, _loss);
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        public void Load(EncodedBatch batch, int vocabulary)
        {
            EncodedBatch.Set(_tokens, batch.Tokens);
            EncodedBatch.Set(_positions, batch.Positions);
            EncodedBatch.Set(_rows, batch.Rows);
            // One scratch array per shape: clear the previous batch's ones instead of allocating rows x vocabulary again.
            _labelScratch ??= new float[(long)batch.Rows.Length * vocabulary];
            for (int r = 0; r < _lastTargets.Length; r++) _labelScratch[(long)r * vocabulary + _lastTargets[r]] = 0f;
            for (int r = 0; r < batch.Targets.Length; r++) _labelScratch[(long)r * vocabulary + batch.Targets[r]] = 1f;
            _lastTargets = batch.Targets;
            EncodedBatch.Set(_labels, _labelScratch);
        }

        public float ReadLoss()
        {
            float loss;
            Ggml.ggml_backend_tensor_get(_loss, &loss, 0, 4);
            return loss;
        }

        public void Dispose()
        {
            if (_context != IntPtr.Zero) { Ggml.ggml_free(_context); _context = IntPtr.Zero; }
            if (_inputBuffer != IntPtr.Zero) { Ggml.ggml_backend_buffer_free(_inputBuffer); _inputBuffer = IntPtr.Zero; }
            if (_inputContext != IntPtr.Zero) { Ggml.ggml_free(_inputContext); _inputContext = IntPtr.Zero; }
        }
    }
}

/// <summary>
/// The previous path, kept selectable for the benchmark: the graph, its backward graph and the allocation are
/// rebuilt by ggml_opt for every batch (non-static graphs). One micro-batch per step.
/// </summary>
internal sealed unsafe class RebuiltGraphSteps : ITrainingSteps
{
    private readonly LlamaGraphModel _model;
    private readonly LoraWeights? _lora;
    private IntPtr _opt;
    private GgmlOptimizerParams* _optParams;

    public RebuiltGraphSteps(LlamaGraphModel model, LoraWeights? lora)
    {
        _model = model;
        _lora = lora;
        _optParams = (GgmlOptimizerParams*)NativeMemory.AllocZeroed((nuint)sizeof(GgmlOptimizerParams));
        _opt = Ggml.ggml_opt_init(new GgmlOptParams
        {
            BackendSched = model.Scheduler,
            LossType = Ggml.LossCrossEntropy,
            BuildType = Ggml.BuildTypeOpt,
            OptPeriod = 1,
            GetOptParams = Ggml.Export("libggml-base.so", "ggml_opt_get_constant_optimizer_params"),
            GetOptParamsUserData = (IntPtr)_optParams,
            Optimizer = Ggml.OptimizerAdamW,
        });
    }

    public (double Loss, int Rows) Train(IReadOnlyList<IReadOnlyList<TrainingWindow>> microBatches, float learningRate, float weightDecay)
    {
        if (microBatches.Count != 1) throw new NotSupportedException("The rebuilt-graph path does not accumulate gradients.");
        *_optParams = new GgmlOptimizerParams
        {
            AdamAlpha = learningRate, AdamBeta1 = 0.9f, AdamBeta2 = 0.999f, AdamEps = 1e-8f, AdamWeightDecay = weightDecay,
            SgdAlpha = learningRate, SgdWeightDecay = weightDecay,
        };
        return Run(microBatches[0], train: true);
    }

    public (double Loss, int Rows) Evaluate(IReadOnlyList<TrainingWindow> batch) => Run(batch, train: false);

    private (double Loss, int Rows) Run(IReadOnlyList<TrainingWindow> batch, bool train)
    {
        var encoded = EncodedBatch.Encode(batch);
        if (encoded.Rows.Length == 0) return (0, 0);
        int n = encoded.Tokens.Length;
        var ctx = _model.NewComputeContext();
        try
        {
            var tokenTensor = Ggml.ggml_new_tensor_1d(ctx, (int)GgmlType.I32, n);
            var positionTensor = Ggml.ggml_new_tensor_1d(ctx, (int)GgmlType.I32, n);
            var rowTensor = Ggml.ggml_new_tensor_1d(ctx, (int)GgmlType.I32, encoded.Rows.Length);
            Ggml.ggml_set_input(positionTensor);
            Ggml.ggml_set_input(rowTensor);
            var logits = _model.Graph.BuildLogits(ctx, tokenTensor, positionTensor, rowTensor, encoded.Length, encoded.Sequences, _lora);
            var graph = Ggml.ggml_new_graph_custom(ctx, (nuint)_model.Graph.GraphSize, true);
            Ggml.ggml_build_forward_expand(graph, logits);
            Ggml.ggml_opt_prepare_alloc(_opt, ctx, graph, tokenTensor, logits);
            Ggml.ggml_opt_alloc(_opt, train);
            // With graphs rebuilt every step ggml_opt accumulates gradients and never clears them itself (it only
            // does so for gradient accumulation over several steps): zero them, so each step uses its own batch.
            if (train) Ggml.ggml_opt_reset(_opt, false);
            EncodedBatch.Set(tokenTensor, encoded.Tokens);
            EncodedBatch.Set(positionTensor, encoded.Positions);
            EncodedBatch.Set(rowTensor, encoded.Rows);
            EncodedBatch.Set(Ggml.ggml_opt_labels(_opt), encoded.Labels(_model.Hyper.VocabularySize));
            Ggml.ggml_opt_eval(_opt, IntPtr.Zero);
            float loss;
            Ggml.ggml_backend_tensor_get(Ggml.ggml_opt_loss(_opt), &loss, 0, 4);
            return (loss, encoded.Rows.Length);
        }
        finally
        {
            Ggml.ggml_free(ctx);
        }
    }

    public void Dispose()
    {
        if (_opt != IntPtr.Zero) { Ggml.ggml_opt_free(_opt); _opt = IntPtr.Zero; }
        if (_optParams != null) { NativeMemory.Free(_optParams); _optParams = null; }
    }
}
