using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using CkLlm.Engine.Model.Gguf;
using CkLlm.Engine.Training.Native;

namespace CkLlm.Engine.Training;

/// <summary>How many matrix products of a training graph <see cref="TrainingProducts.Rewrite"/> computes another way.</summary>
internal readonly record struct ProductRewrites(int OutProdsAsMulMats, int NarrowMulMatsAsOutProds, int NarrowOutProdsTransposed)
{
    public int Total => OutProdsAsMulMats + NarrowMulMatsAsOutProds + NarrowOutProdsTransposed;
}

/// <summary>
/// Picks, for every 2-D matrix product of a training graph (forward and backward), the ggml kernel that computes it
/// fast on the CPU. Each rewrite computes the same product (only the summation order changes):
/// <list type="bullet">
/// <item>ggml's autodiff writes both gradients of a mul_mat as out_prod, which the CPU backend computes with vector
/// multiply-adds along the result's rows, while mul_mat runs on its blocked sgemm. perf on a Medium-preset LoRA step:
/// 31% of the time in out_prod's ggml_vec_mad_f32_unroll against 15% in the forward's sgemm for the same arithmetic.
/// A product over a long inner dimension, out_prod(a, b), becomes mul_mat(aᵀ, bᵀ).</item>
/// <item>LoRA's rank-r products are the opposite case: a mul_mat over an inner dimension of r (B·(Ax), and Aᵀg in
/// the backward pass) spends its time on per-element horizontal sums (per node 5 ms for 4M multiply-adds, ~15x the
/// arithmetic rate of the base projection), while out_prod streams long rows: mul_mat(a, b) with a short inner
/// dimension becomes out_prod(aᵀ, bᵀ) (aᵀ is a copy of r rows, bᵀ a strided view).</item>
/// <item>An out_prod whose result rows are r long (a LoRA B gradient, out_prod(Ax, g)) multiply-adds r floats at a
/// time; its transpose out_prod(g, Ax) has rows as long as the projection, and a copy of the small r-row result turns
/// it back.</item>
/// </list>
/// </summary>
internal static unsafe class TrainingProducts
{
    private static readonly Lazy<(int OutProd, int MulMat, int Transpose, int Cont)> Ops = new(ReadOpCodes);

    /// <summary>Multiply-adds per copied element below which an out_prod is not turned into a mul_mat.</summary>
    private const long MinimumRatio = 32;

    /// <summary>Inner dimensions up to this are "short" (LoRA ranks), result rows up to this "narrow".</summary>
    internal const long ShortDimension = 16;

    /// <summary>Rows at least this long make out_prod's multiply-adds efficient.</summary>
    private const long LongRow = 64;

    /// <summary>
    /// Returns a graph with the same nodes in the same order as <paramref name="graph"/>, its 2-D F32/F16 products
    /// rewritten in place (see the class summary) and the transposed copies they read inserted before them. Weights
    /// whose transpose <paramref name="transposed"/> holds (<see cref="TransposedWeights"/>) are read from there
    /// instead of being copied every step. Nodes keep their identity, so the gradients already built on them stay valid; a graph holding a subset of
    /// the nodes (the forward graph) must be expanded again from its outputs.
    /// </summary>
    public static (IntPtr Graph, ProductRewrites Rewrites) Rewrite(IntPtr ctx, IntPtr graph, int graphSize, IReadOnlyDictionary<IntPtr, IntPtr>? transposed = null)
    {
        var (outProd, mulMat, transpose, cont) = Ops.Value;
        int count = Ggml.ggml_graph_n_nodes(graph);
        var nodes = new IntPtr[count];
        for (int i = 0; i < count; i++) nodes[i] = Ggml.ggml_graph_node(graph, i);
        int asMulMats = 0, asOutProds = 0, transposedOutProds = 0;
        // One transposed copy per operand and graph: LoRA's Bᵀ serves the forward product and the backward one.
        var copies = new Dictionary<IntPtr, IntPtr>();
        IntPtr TransposedCopy(IntPtr a)
        {
            if (transposed is not null && transposed.TryGetValue(a, out var cached)) return cached;
            if (!copies.TryGetValue(a, out var copy)) copies[a] = copy = Ggml.ggml_cont(ctx, Ggml.ggml_transpose(ctx, a));
            return copy;
        }
        foreach (var node in nodes)
        {
            var t = (GgmlTensor*)node;
            if (t->Op != outProd && t->Op != mulMat) continue;
            IntPtr a = (IntPtr)t->Src[0], b = (IntPtr)t->Src[1];
            if (!IsMatrix(a) || !IsMatrix(b) || !IsMatrix(node) || Ggml.TypeOf(b) != (int)GgmlType.F32) continue;
            if (t->Op == mulMat)
            {
                // mul_mat(a [K, M], b [K, N]) = dst [M, N] = out_prod(aᵀ [M, K], bᵀ [N, K]); out_prod reads its second
                // operand through strides, so bᵀ stays a view.
                long k = ((GgmlTensor*)a)->Ne[0], m = ((GgmlTensor*)a)->Ne[1];
                if (k > ShortDimension || m < LongRow || Ggml.TypeOf(a) != (int)GgmlType.F32) continue;
                t->Op = outProd;
                t->Src[0] = (ulong)TransposedCopy(a);
                t->Src[1] = (ulong)Ggml.ggml_transpose(ctx, b);
                asOutProds++;
                continue;
            }
            {
                // out_prod(a [K, M], b [N, M]) = dst [K, N].
                long k = ((GgmlTensor*)a)->Ne[0], m = ((GgmlTensor*)a)->Ne[1], n = ((GgmlTensor*)b)->Ne[0];
                if (k <= ShortDimension && n >= LongRow && RowsContiguousF32(b) && Ggml.TypeOf(a) == (int)GgmlType.F32)
                {
                    // dst = (out_prod(b, a) [N, K])ᵀ, copied: the node becomes that copy.
                    var product = Ggml.ggml_out_prod(ctx, b, a);
                    t->Op = cont;
                    t->Src[0] = (ulong)Ggml.ggml_transpose(ctx, product);
                    t->Src[1] = 0;
                    transposedOutProds++;
                    continue;
                }
                // A short inner dimension is what out_prod is good at (LoRA's Aᵀg).
                if (m < LongRow || !Transposable(a)) continue;
                // out_prod(a [K, M], b [N, M]) = mul_mat(aᵀ [M, K], bᵀ [M, N]).
                bool copiedA = !(transposed?.ContainsKey(a) ?? false) && !copies.ContainsKey(a);
                var directB = ((GgmlTensor*)b)->Op == transpose && RowsContiguousF32((IntPtr)((GgmlTensor*)b)->Src[0])
                    ? (IntPtr)((GgmlTensor*)b)->Src[0] : IntPtr.Zero;
                long copied = (copiedA ? k * m : 0) + (directB == IntPtr.Zero ? n * m : 0);
                // A product whose operands must be copied transposed only pays when it is large next to the copies.
                if (k * m * n < MinimumRatio * copied) continue;
                var aT = TransposedCopy(a);
                var bT = directB != IntPtr.Zero ? directB : Ggml.ggml_cont(ctx, Ggml.ggml_transpose(ctx, b));
                t->Op = mulMat;
                t->Src[0] = (ulong)aT;
                t->Src[1] = (ulong)bT;
                asMulMats++;
            }
        }
        var rewrites = new ProductRewrites(asMulMats, asOutProds, transposedOutProds);
        if (rewrites.Total == 0) return (graph, rewrites);
        // Re-expanding node by node keeps the order and puts each new node right before its consumer.
        var rewritten = Ggml.ggml_new_graph_custom(ctx, (nuint)graphSize, false);
        foreach (var node in nodes) Ggml.ggml_build_forward_expand(rewritten, node);
        return (rewritten, rewrites);
    }

    private static bool IsMatrix(IntPtr tensor)
    {
        var t = (GgmlTensor*)tensor;
        return t->Ne[2] == 1 && t->Ne[3] == 1;
    }

    /// <summary>mul_mat's first operand must be F32 or F16 to be copied transposed (quantized blocks cannot be).</summary>
    private static bool Transposable(IntPtr tensor) => Ggml.TypeOf(tensor) is (int)GgmlType.F32 or (int)GgmlType.F16;

    private static bool RowsContiguousF32(IntPtr tensor)
    {
        var t = (GgmlTensor*)tensor;
        return t->Type == (int)GgmlType.F32 && t->Nb[0] == 4 && t->Nb[1] == 4 * (ulong)t->Ne[0];
    }

    /// <summary>The enum values of this ggml build, read from ops it creates (they shift between versions).</summary>
    private static (int, int, int, int) ReadOpCodes()
    {
        var ctx = Ggml.ggml_init(new GgmlInitParams { MemSize = 16 * Ggml.ggml_tensor_overhead(), NoAlloc = true });
        try
        {
            var a = Ggml.ggml_new_tensor_2d(ctx, (int)GgmlType.F32, 2, 3);
            var b = Ggml.ggml_new_tensor_2d(ctx, (int)GgmlType.F32, 4, 3);
            var c = Ggml.ggml_new_tensor_2d(ctx, (int)GgmlType.F32, 2, 4);
            return (((GgmlTensor*)Ggml.ggml_out_prod(ctx, a, b))->Op, ((GgmlTensor*)Ggml.ggml_mul_mat(ctx, a, c))->Op,
                ((GgmlTensor*)Ggml.ggml_transpose(ctx, a))->Op, ((GgmlTensor*)Ggml.ggml_cont(ctx, Ggml.ggml_transpose(ctx, a)))->Op);
        }
        finally
        {
            Ggml.ggml_free(ctx);
        }
    }
}

/// <summary>
/// Gradients written straight into their accumulators. ggml's backward pass adds each parameter's gradient into its
/// accumulator in place (accumulator += term), which for gradient accumulation over micro-batches is what is wanted,
/// but a step of one micro-batch then pays for clearing every accumulator and for an add over every weight-sized
/// gradient (Full: the model's size read twice and written twice per step). In such a graph the add of a parameter's
/// first term becomes the term's own op computing into the accumulator (every op taken over writes its whole result:
/// the products set it, the "back" ops zero it first); the terms that follow still add to it.
/// </summary>
internal static unsafe class GradientWrites
{
    private static readonly string[] WholeResultOps = ["MUL_MAT", "OUT_PROD", "GET_ROWS_BACK", "REPEAT_BACK", "CONT", "DUP"];

    /// <summary>GGML_TENSOR_FLAG_INPUT | OUTPUT | PARAM | LOSS (COMPUTE only marks a node that runs).</summary>
    private const int UserFlags = 1 | 2 | 4 | 8;

    /// <summary>
    /// Returns the graph with those adds replaced (same node order, the replaced terms dropped) and the accumulators
    /// it now writes whole, which therefore need no clearing before it runs.
    /// </summary>
    public static (IntPtr Graph, HashSet<IntPtr> Written) Rewrite(IntPtr ctx, IntPtr graph, int graphSize, IReadOnlyCollection<IntPtr> accumulators)
    {
        int count = Ggml.ggml_graph_n_nodes(graph);
        var nodes = new IntPtr[count];
        var uses = new Dictionary<IntPtr, int>();
        for (int i = 0; i < count; i++)
        {
            var node = nodes[i] = Ggml.ggml_graph_node(graph, i);
            for (int j = 0; j < 10; j++)
                if (((GgmlTensor*)node)->Src[j] is var src and not 0) uses[(IntPtr)src] = uses.GetValueOrDefault((IntPtr)src) + 1;
        }
        var targets = accumulators.ToHashSet();
        var written = new HashSet<IntPtr>();
        var dropped = new HashSet<IntPtr>();
        foreach (var node in nodes)
        {
            var t = (GgmlTensor*)node;
            var accumulator = (IntPtr)t->Src[0];
            var term = (IntPtr)t->Src[1];
            if (!targets.Contains(accumulator) || t->ViewSrc != accumulator || OpName(node) != "ADD" || written.Contains(accumulator)) continue;
            var s = (GgmlTensor*)term;
            if (s->ViewSrc != IntPtr.Zero || (s->Flags & UserFlags) != 0 || uses.GetValueOrDefault(term) != 1 || !WholeResultOps.Contains(OpName(term))
                || !SameContiguousF32(term, accumulator)) continue;
            t->Op = s->Op;
            for (int j = 0; j < 16; j++) t->OpParams[j] = s->OpParams[j];
            for (int j = 0; j < 10; j++) t->Src[j] = s->Src[j];
            written.Add(accumulator);
            dropped.Add(term);
        }
        if (written.Count == 0) return (graph, written);
        var rewritten = Ggml.ggml_new_graph_custom(ctx, (nuint)graphSize, false);
        foreach (var node in nodes)
            if (!dropped.Contains(node)) Ggml.ggml_build_forward_expand(rewritten, node);
        return (rewritten, written);
    }

    private static string OpName(IntPtr tensor) => Marshal.PtrToStringUTF8(Ggml.ggml_op_desc(tensor)) ?? "";

    private static bool SameContiguousF32(IntPtr a, IntPtr b)
    {
        var x = (GgmlTensor*)a;
        var y = (GgmlTensor*)b;
        if (x->Type != (int)GgmlType.F32 || y->Type != (int)GgmlType.F32) return false;
        ulong stride = 4;
        for (int d = 0; d < 4; d++)
        {
            if (x->Ne[d] != y->Ne[d] || x->Nb[d] != stride || y->Nb[d] != stride) return false;
            stride *= (ulong)x->Ne[d];
        }
        return true;
    }
}

/// <summary>
/// Transposed copies of weights, so the rewritten backward graph reads Wᵀ for the input gradients instead of copying
/// it every step (ggml's cont(transpose(W)) reads W column by column: a cache miss per element). LoRA's frozen base
/// is transposed once; Full's weights change with every optimizer step, so <see cref="Refresh"/> writes the copies
/// again right after it. Costs the weights' memory once more; F32 and F16 weights only.
/// </summary>
internal sealed unsafe class TransposedWeights : IDisposable
{
    /// <summary>Rows of a weight one task transposes: their elements of one column are written back to back.</summary>
    private const int RowBlock = 64;

    /// <summary>Columns swept per pass over a row block (the block's source lines stay in L1 meanwhile).</summary>
    private const int ColumnTile = 32;

    private IntPtr _context, _buffer;
    private readonly Dictionary<IntPtr, IntPtr> _copies = new();
    private readonly (IntPtr Source, IntPtr Copy, long RowStart)[] _tasks = [];
    private readonly ParallelOptions _parallel;

    public IReadOnlyDictionary<IntPtr, IntPtr> Copies => _copies;

    public TransposedWeights(IntPtr backend, IEnumerable<IntPtr> weights, int threads)
    {
        _parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads) };
        var sources = weights.Distinct()
            .Where(w => Ggml.TypeOf(w) is (int)GgmlType.F32 or (int)GgmlType.F16 && Ggml.Shape(w) is [_, _, 1, 1] && Contiguous(w)).ToList();
        if (sources.Count == 0) return;
        try
        {
            _context = Ggml.ggml_init(new GgmlInitParams { MemSize = (nuint)(sources.Count + 4) * Ggml.ggml_tensor_overhead(), NoAlloc = true });
            foreach (var w in sources)
            {
                var shape = Ggml.Shape(w);
                _copies[w] = Ggml.ggml_new_tensor_2d(_context, Ggml.TypeOf(w), shape[1], shape[0]);
            }
            _buffer = Ggml.ggml_backend_alloc_ctx_tensors(_context, backend);
            if (_buffer == IntPtr.Zero) throw new OutOfMemoryException("Cannot allocate the transposed weights.");
            HugePages.Advise(_buffer);
            _tasks = _copies.SelectMany(kv => Enumerable.Range(0, (int)((Ggml.Shape(kv.Key)[1] + RowBlock - 1) / RowBlock))
                .Select(b => (kv.Key, kv.Value, (long)b * RowBlock))).ToArray();
            Refresh();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Writes every copy again from its weight (the CPU backend's buffers are host memory).</summary>
    public void Refresh() => Parallel.For(0, _tasks.Length, _parallel, i =>
    {
        var (source, copy, rowStart) = _tasks[i];
        var s = (GgmlTensor*)source;
        long columns = s->Ne[0], rows = s->Ne[1], rowEnd = Math.Min(rowStart + RowBlock, rows);
        if (s->Type == (int)GgmlType.F32) TransposeRows((float*)s->Data, (float*)((GgmlTensor*)copy)->Data, columns, rows, rowStart, rowEnd);
        else TransposeRows((ushort*)s->Data, (ushort*)((GgmlTensor*)copy)->Data, columns, rows, rowStart, rowEnd);
    });

    /// <summary>F32: 8 x 8 blocks in AVX registers (the scalar loop below handles the edges).</summary>
    internal static void TransposeRows(float* source, float* target, long columns, long rows, long rowStart, long rowEnd)
    {
        if (!Avx.IsSupported)
        {
            TransposeRows<float>(source, target, columns, rows, rowStart, rowEnd);
            return;
        }
        long blockRows = rowStart + (rowEnd - rowStart) / 8 * 8, blockColumns = columns / 8 * 8;
        for (long c = 0; c < blockColumns; c += 8)
            for (long r = rowStart; r < blockRows; r += 8)
                Transpose8x8(source + r * columns + c, columns, target + c * rows + r, rows);
        // The right edge (columns not a multiple of 8) for the whole stretch, then the bottom rows left over.
        if (blockColumns < columns) TransposeRows<float>(source, target, columns, rows, rowStart, blockRows, blockColumns);
        if (blockRows < rowEnd) TransposeRows<float>(source, target, columns, rows, blockRows, rowEnd);
    }

    private static void Transpose8x8(float* from, long fromStride, float* to, long toStride)
    {
        var r0 = Avx.LoadVector256(from);
        var r1 = Avx.LoadVector256(from + fromStride);
        var r2 = Avx.LoadVector256(from + 2 * fromStride);
        var r3 = Avx.LoadVector256(from + 3 * fromStride);
        var r4 = Avx.LoadVector256(from + 4 * fromStride);
        var r5 = Avx.LoadVector256(from + 5 * fromStride);
        var r6 = Avx.LoadVector256(from + 6 * fromStride);
        var r7 = Avx.LoadVector256(from + 7 * fromStride);
        // Pairs of rows interleaved, then quadruples, then the 128-bit halves swapped into place.
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        var s0 = Avx.Shuffle(t0, t2, 0x44); var s1 = Avx.Shuffle(t0, t2, 0xEE);
        var s2 = Avx.Shuffle(t1, t3, 0x44); var s3 = Avx.Shuffle(t1, t3, 0xEE);
        var s4 = Avx.Shuffle(t4, t6, 0x44); var s5 = Avx.Shuffle(t4, t6, 0xEE);
        var s6 = Avx.Shuffle(t5, t7, 0x44); var s7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(to, Avx.Permute2x128(s0, s4, 0x20));
        Avx.Store(to + toStride, Avx.Permute2x128(s1, s5, 0x20));
        Avx.Store(to + 2 * toStride, Avx.Permute2x128(s2, s6, 0x20));
        Avx.Store(to + 3 * toStride, Avx.Permute2x128(s3, s7, 0x20));
        Avx.Store(to + 4 * toStride, Avx.Permute2x128(s0, s4, 0x31));
        Avx.Store(to + 5 * toStride, Avx.Permute2x128(s1, s5, 0x31));
        Avx.Store(to + 6 * toStride, Avx.Permute2x128(s2, s6, 0x31));
        Avx.Store(to + 7 * toStride, Avx.Permute2x128(s3, s7, 0x31));
    }

    /// <summary>Rows [rowStart, rowEnd) of <paramref name="source"/> (rows x columns, row-major) become the same
    /// stretch of rows [columnStart, columns) of <paramref name="target"/> (columns x rows).</summary>
    internal static void TransposeRows<T>(T* source, T* target, long columns, long rows, long rowStart, long rowEnd, long columnStart = 0) where T : unmanaged
    {
        for (long c0 = columnStart; c0 < columns; c0 += ColumnTile)
        {
            long c1 = Math.Min(c0 + ColumnTile, columns);
            for (long c = c0; c < c1; c++)
            {
                T* to = target + c * rows;
                T* from = source + c;
                for (long r = rowStart; r < rowEnd; r++) to[r] = from[r * columns];
            }
        }
    }

    private static bool Contiguous(IntPtr tensor)
    {
        var t = (GgmlTensor*)tensor;
        long size = t->Type == (int)GgmlType.F32 ? 4 : 2;
        return t->Data != IntPtr.Zero && (long)t->Nb[0] == size && (long)t->Nb[1] == size * t->Ne[0];
    }

    public void Dispose()
    {
        if (_buffer != IntPtr.Zero) { Ggml.ggml_backend_buffer_free(_buffer); _buffer = IntPtr.Zero; }
        if (_context != IntPtr.Zero) { Ggml.ggml_free(_context); _context = IntPtr.Zero; }
    }
}
