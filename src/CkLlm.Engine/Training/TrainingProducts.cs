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
    /// rewritten in place (see the class summary) and the transposed copies they read inserted before them. Frozen
    /// weights whose transpose <paramref name="transposed"/> holds are read from there instead of being copied every
    /// step. Nodes keep their identity, so the gradients already built on them stay valid; a graph holding a subset of
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
/// Transposed copies of frozen weights (LoRA's base), made once, so the rewritten backward graph reads Wᵀ instead of
/// copying it every step. Costs the weights' memory once more; F32 and F16 weights only.
/// </summary>
internal sealed unsafe class TransposedWeights : IDisposable
{
    private IntPtr _context, _buffer;
    private readonly Dictionary<IntPtr, IntPtr> _copies = new();

    public IReadOnlyDictionary<IntPtr, IntPtr> Copies => _copies;

    public TransposedWeights(IntPtr backend, IEnumerable<IntPtr> weights)
    {
        var sources = weights.Distinct()
            .Where(w => Ggml.TypeOf(w) is (int)GgmlType.F32 or (int)GgmlType.F16 && Ggml.Shape(w) is [_, _, 1, 1]).ToList();
        if (sources.Count == 0) return;
        var overhead = Ggml.ggml_tensor_overhead();
        try
        {
            _context = Ggml.ggml_init(new GgmlInitParams { MemSize = (nuint)(sources.Count + 4) * overhead, NoAlloc = true });
            foreach (var w in sources)
            {
                var shape = Ggml.Shape(w);
                _copies[w] = Ggml.ggml_new_tensor_2d(_context, Ggml.TypeOf(w), shape[1], shape[0]);
            }
            _buffer = Ggml.ggml_backend_alloc_ctx_tensors(_context, backend);
            if (_buffer == IntPtr.Zero) throw new OutOfMemoryException("Cannot allocate the transposed weights.");

            nuint size = (nuint)(4 * sources.Count + 16);
            var work = Ggml.ggml_init(new GgmlInitParams
            {
                MemSize = (nuint)(3 * sources.Count + 4) * overhead + Ggml.ggml_graph_overhead_custom(size, false), NoAlloc = true,
            });
            try
            {
                var graph = Ggml.ggml_new_graph_custom(work, size, false);
                foreach (var (w, copy) in _copies) Ggml.ggml_build_forward_expand(graph, Ggml.ggml_cpy(work, Ggml.ggml_transpose(work, w), copy));
                int status = Ggml.ggml_backend_graph_compute(backend, graph);
                if (status != 0) throw new InvalidOperationException($"Transposing the frozen weights failed with ggml status {status}.");
            }
            finally
            {
                Ggml.ggml_free(work);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        if (_buffer != IntPtr.Zero) { Ggml.ggml_backend_buffer_free(_buffer); _buffer = IntPtr.Zero; }
        if (_context != IntPtr.Zero) { Ggml.ggml_free(_context); _context = IntPtr.Zero; }
    }
}
