using CkLlm.Engine.Model.Gguf;
using CkLlm.Engine.Training.Native;

namespace CkLlm.Engine.Training;

/// <summary>A GGUF llama model loaded on a ggml CPU backend, with its forward graph and a scheduler to run it.</summary>
internal sealed unsafe class LlamaGraphModel : IDisposable
{
    private IntPtr _backend;
    private IntPtr _sched;

    public GgufModelFile File { get; }
    public LlamaGraph Graph { get; }
    public IntPtr Backend => _backend;
    public IntPtr Scheduler => _sched;
    public LlamaHyperParameters Hyper => Graph.Hyper;

    /// <summary>CPU threads the backend computes with.</summary>
    public int Threads { get; }

    /// <summary>
    /// Threads when none are asked for: the cores the other processes leave idle (1-minute load average), at least
    /// one. ggml's CPU threads spin at every barrier, so a thread without a core of its own stalls all the others:
    /// on 2 cores at load ~30 the Tiny preset trained at 1,264 tokens/s with 1 thread and 76 with 2.
    /// </summary>
    internal static int DefaultThreads(int cores, double loadAverage) =>
        Math.Clamp(cores - (int)Math.Floor(Math.Max(0, loadAverage)), 1, cores);

    internal static int IdleCoreThreads() => DefaultThreads(Environment.ProcessorCount, ReadLoadAverage());

    private static double ReadLoadAverage()
    {
        try
        {
            var first = System.IO.File.ReadAllText("/proc/loadavg").Split(' ')[0];
            return double.Parse(first, System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { return 0; }
    }

    public LlamaGraphModel(string path, int threads = 0)
    {
        // Refuse architectures the graph does not implement before ggml sees the file.
        TrainingSupport.Check(path);
        Ggml.Initialize();
        _backend = Ggml.ggml_backend_cpu_init();
        if (_backend == IntPtr.Zero) throw new InvalidOperationException("ggml could not create its CPU backend.");
        Threads = threads > 0 ? threads : IdleCoreThreads();
        Ggml.ggml_backend_cpu_set_n_threads(_backend, Threads);
        try
        {
            File = GgufModelFile.Open(path, _backend);
            Graph = new LlamaGraph(File);
            var buft = Ggml.ggml_backend_get_default_buffer_type(_backend);
            var backend = _backend;
            _sched = Ggml.ggml_backend_sched_new(&backend, &buft, 1, (nuint)Graph.GraphSize, false, false);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Creates a no-alloc ggml context large enough for training graphs of this model (forward, backward
    /// and both rewritten by <see cref="TrainingProducts"/>).</summary>
    public IntPtr NewComputeContext()
    {
        nuint size = (nuint)Graph.GraphSize;
        nuint bytes = size * 4 * Ggml.ggml_tensor_overhead() + 4 * Ggml.ggml_graph_overhead_custom(size, true);
        var ctx = Ggml.ggml_init(new GgmlInitParams { MemSize = bytes, NoAlloc = true });
        return ctx != IntPtr.Zero ? ctx : throw new OutOfMemoryException("ggml_init failed.");
    }

    public void CheckTokens(ReadOnlySpan<int> tokens)
    {
        foreach (var t in tokens)
            if ((uint)t >= (uint)Hyper.VocabularySize)
                throw new ArgumentOutOfRangeException(nameof(tokens), t, $"Token id outside the vocabulary (0..{Hyper.VocabularySize - 1}).");
    }

    /// <summary>Logits [tokens.Length * n_vocab] (row per position) of the graph for one window.</summary>
    public float[] ComputeLogits(int[] tokens, LoraWeights? lora = null)
    {
        if (tokens.Length == 0) throw new ArgumentException("No tokens.", nameof(tokens));
        CheckTokens(tokens);
        var ctx = NewComputeContext();
        try
        {
            int n = tokens.Length;
            var tokenTensor = Ggml.ggml_new_tensor_1d(ctx, (int)GgmlType.I32, n);
            var positionTensor = Ggml.ggml_new_tensor_1d(ctx, (int)GgmlType.I32, n);
            Ggml.ggml_set_input(tokenTensor);
            Ggml.ggml_set_input(positionTensor);
            var logits = Graph.BuildLogits(ctx, tokenTensor, positionTensor, IntPtr.Zero, n, 1, lora);
            Ggml.ggml_set_output(logits);
            var graph = Ggml.ggml_new_graph_custom(ctx, (nuint)Graph.GraphSize, false);
            Ggml.ggml_build_forward_expand(graph, logits);
            Ggml.ggml_backend_sched_reset(_sched);
            if (!Ggml.ggml_backend_sched_alloc_graph(_sched, graph)) throw new OutOfMemoryException("Cannot allocate the forward graph.");
            var positions = Enumerable.Range(0, n).ToArray();
            fixed (int* t = tokens) Ggml.ggml_backend_tensor_set(tokenTensor, t, 0, (nuint)(n * 4));
            fixed (int* p = positions) Ggml.ggml_backend_tensor_set(positionTensor, p, 0, (nuint)(n * 4));
            int status = Ggml.ggml_backend_sched_graph_compute(_sched, graph);
            if (status != 0) throw new InvalidOperationException($"ggml graph compute failed with status {status}.");
            var result = new float[(long)n * Hyper.VocabularySize];
            fixed (float* r = result) Ggml.ggml_backend_tensor_get(logits, r, 0, (nuint)(result.Length * 4L));
            return result;
        }
        finally
        {
            Ggml.ggml_backend_sched_reset(_sched);
            Ggml.ggml_free(ctx);
        }
    }

    public void Dispose()
    {
        if (_sched != IntPtr.Zero) { Ggml.ggml_backend_sched_free(_sched); _sched = IntPtr.Zero; }
        File?.Dispose();
        if (_backend != IntPtr.Zero) { Ggml.ggml_backend_free(_backend); _backend = IntPtr.Zero; }
    }
}
