using CkLlm.Engine.Model.Gguf;
using CkLlm.Engine.Training.Native;

namespace CkLlm.Engine.Training;

/// <summary>
/// LoRA pairs for a llama graph: for each adapted projection W [n_in, n_out] (ggml order) a down-projection
/// A [n_in, r] and an up-projection B [r, n_out], applied as W x + (alpha / r) B (A x) exactly as llama.cpp applies an
/// adapter. A starts uniform in ±1/sqrt(n_in), B at zero, so training starts from the base model.
/// </summary>
internal sealed unsafe class LoraWeights : IDisposable
{
    private readonly Dictionary<(int Block, string Name), (IntPtr A, IntPtr B)> _pairs = new();
    private readonly List<(int Block, string Name)> _order = new();
    private IntPtr _context;
    private IntPtr _buffer;

    public int Rank { get; }
    public float Alpha { get; }
    public float Scale => Alpha / Rank;
    public IReadOnlyList<string> Targets { get; }

    public LoraWeights(LlamaGraph graph, IntPtr backend, int rank, float alpha, IReadOnlyList<string> targets, int seed)
    {
        if (rank < 1) throw new ArgumentOutOfRangeException(nameof(rank), rank, "LoRA rank must be at least 1.");
        if (!(alpha > 0)) throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "LoRA alpha must be positive.");
        var unknown = targets.Except(LoraTargets.All).ToList();
        if (unknown.Count > 0 || targets.Count == 0)
            throw new ArgumentException($"LoRA targets must be among {string.Join(", ", LoraTargets.All)}; got '{string.Join(", ", targets)}'.", nameof(targets));
        Rank = rank;
        Alpha = alpha;
        Targets = targets;
        if (targets.Contains(LoraTargets.Output) && !graph.HasOutputTensor)
            throw new ArgumentException("This model ties its output to the token embedding; 'output' cannot be a LoRA target.", nameof(targets));
        var slots = targets.Where(t => t != LoraTargets.Output)
            .SelectMany(t => Enumerable.Range(0, graph.Hyper.BlockCount).Select(b => (Block: b, Name: t)))
            .OrderBy(s => s.Block).ToList();
        if (targets.Contains(LoraTargets.Output)) slots.Add((LoraTargets.OutputBlock, LoraTargets.Output));
        _context = Ggml.ggml_init(new GgmlInitParams { MemSize = (nuint)(slots.Count * 2 + 8) * Ggml.ggml_tensor_overhead(), NoAlloc = true });
        foreach (var (block, name) in slots)
        {
            var shape = Ggml.Shape(graph.Weight(block, name));
            var a = Ggml.ggml_new_tensor_2d(_context, (int)GgmlType.F32, shape[0], rank);
            var b = Ggml.ggml_new_tensor_2d(_context, (int)GgmlType.F32, rank, shape[1]);
            var tensorName = LlamaGraph.TensorName(block, name);
            Ggml.ggml_set_name(a, tensorName + ".lora_a");
            Ggml.ggml_set_name(b, tensorName + ".lora_b");
            Ggml.ggml_set_param(a);
            Ggml.ggml_set_param(b);
            _pairs[(block, name)] = (a, b);
            _order.Add((block, name));
        }
        _buffer = Ggml.ggml_backend_alloc_ctx_tensors(_context, backend);
        if (_buffer == IntPtr.Zero) throw new OutOfMemoryException("Cannot allocate the LoRA tensors.");
        var random = new Random(seed);
        foreach (var (a, b) in _pairs.Values)
        {
            var shapeA = Ggml.Shape(a);
            float bound = 1f / MathF.Sqrt(shapeA[0]);
            var values = new float[shapeA[0] * shapeA[1]];
            for (int i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() * 2 - 1) * bound;
            Set(a, values);
            Set(b, new float[Ggml.ggml_nelements(b)]);
        }
    }

    public IEnumerable<IntPtr> Parameters => _order.SelectMany(k => new[] { _pairs[k].A, _pairs[k].B });

    public long ParameterCount => Parameters.Sum(Ggml.ggml_nelements);

    public bool TryGet(int block, string name, out IntPtr a, out IntPtr b)
    {
        var found = _pairs.TryGetValue((block, name), out var pair);
        (a, b) = pair;
        return found;
    }

    public static void Set(IntPtr tensor, float[] values)
    {
        if (values.Length != Ggml.ggml_nelements(tensor)) throw new ArgumentException("Size mismatch.", nameof(values));
        fixed (float* p = values) Ggml.ggml_backend_tensor_set(tensor, p, 0, (nuint)(values.Length * 4));
    }

    public static float[] Get(IntPtr tensor)
    {
        var values = new float[Ggml.ggml_nelements(tensor)];
        fixed (float* p = values) Ggml.ggml_backend_tensor_get(tensor, p, 0, (nuint)(values.Length * 4));
        return values;
    }

    /// <summary>Writes a llama.cpp LoRA adapter GGUF (general.type=adapter, adapter.type=lora, adapter.lora.alpha).</summary>
    public void Save(string path, string architecture, IReadOnlyDictionary<string, string>? extraMetadata = null)
    {
        var writer = new GgufWriter()
            .Add("general.architecture", architecture)
            .Add("general.type", "adapter")
            .Add("general.name", Path.GetFileNameWithoutExtension(path))
            .Add("adapter.type", "lora")
            .Add("adapter.lora.alpha", Alpha);
        if (extraMetadata is not null) foreach (var (k, v) in extraMetadata) writer.Add(k, v);
        foreach (var key in _order)
        {
            var (a, b) = _pairs[key];
            writer.AddTensor(Ggml.NameOf(a), Ggml.Shape(a)[..2], Get(a));
            writer.AddTensor(Ggml.NameOf(b), Ggml.Shape(b)[..2], Get(b));
        }
        writer.WriteTo(path);
    }

    /// <summary>Loads A/B values from an adapter or checkpoint GGUF written by <see cref="Save"/>.</summary>
    public void Load(string path)
    {
        using var file = GgufModelFile.Open(path, IntPtr.Zero);
        using var stream = File.OpenRead(path);
        long dataOffset = (long)Ggml.gguf_get_data_offset(file.Gguf);
        foreach (var (key, (a, b)) in _pairs)
            foreach (var (tensor, suffix) in new[] { (a, "lora_a"), (b, "lora_b") })
            {
                var name = LlamaGraph.TensorName(key.Block, key.Name) + "." + suffix;
                long id = Ggml.gguf_find_tensor(file.Gguf, name);
                if (id < 0) throw new GgufFormatException(path, $"tensor '{name}' is missing.");
                var stored = file.Tensor(name);
                if (Ggml.TypeOf(stored) != (int)GgmlType.F32 || !Ggml.Shape(stored).SequenceEqual(Ggml.Shape(tensor)))
                    throw new GgufFormatException(path, $"tensor '{name}' has a different type or shape (rank {Rank} expected).");
                var bytes = new byte[Ggml.ggml_nbytes(tensor)];
                stream.Position = dataOffset + (long)Ggml.gguf_get_tensor_offset(file.Gguf, id);
                stream.ReadExactly(bytes);
                fixed (byte* p = bytes) Ggml.ggml_backend_tensor_set(tensor, p, 0, (nuint)bytes.Length);
            }
    }

    public void Dispose()
    {
        if (_buffer != IntPtr.Zero) { Ggml.ggml_backend_buffer_free(_buffer); _buffer = IntPtr.Zero; }
        if (_context != IntPtr.Zero) { Ggml.ggml_free(_context); _context = IntPtr.Zero; }
    }
}
