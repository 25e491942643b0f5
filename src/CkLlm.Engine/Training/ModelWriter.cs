using CkLlm.Engine.Model.Generation;
using CkLlm.Engine.Model.Gguf;
using CkLlm.Engine.Training.Native;

namespace CkLlm.Engine.Training;

/// <summary>
/// Writes a complete GGUF from a loaded model with ggml's own gguf writer: every metadata key copied from the
/// source file, tensors in the source order with their data read from the backend (so Full fine-tuning's updated
/// weights are written), and with a LoRA the adapted projections merged in F32 (W + alpha/r * A·B). Optionally
/// re-quantized by llama.cpp afterwards.
/// </summary>
internal static unsafe class ModelWriter
{
    public static void Write(LlamaGraphModel model, LoraWeights? lora, string outputPath, string? quantization)
    {
        outputPath = Path.GetFullPath(outputPath);
        Directory.CreateDirectory(Path.GetDirectoryName(outputPath)!);
        var gguf = Ggml.gguf_init_empty();
        // Merged tensors live in this context (allocated in host memory) until the file is written.
        var mergedCount = lora is null ? 0 : model.Hyper.BlockCount * lora.Targets.Count;
        var mergedContext = IntPtr.Zero;
        try
        {
            Ggml.gguf_set_kv(gguf, model.File.Gguf);
            if (lora is not null)
            {
                long bytes = 0;
                foreach (var name in lora.Targets)
                    if (name == LoraTargets.Output) bytes += Ggml.ggml_nelements(model.Graph.Output) * 4 + 64;
                    else for (int block = 0; block < model.Hyper.BlockCount; block++)
                        bytes += Ggml.ggml_nelements(model.Graph.Weight(block, name)) * 4 + 64;
                mergedContext = Ggml.ggml_init(new GgmlInitParams
                {
                    MemSize = (nuint)(bytes + (mergedCount + 8) * (long)Ggml.ggml_tensor_overhead()),
                    NoAlloc = false,
                });
                if (mergedContext == IntPtr.Zero) throw new OutOfMemoryException("Cannot allocate the merged tensors.");
            }
            foreach (var tensor in model.File.Tensors())
            {
                var name = Ggml.NameOf(tensor);
                if (lora is not null && TryParse(name, out var block, out var target) && lora.TryGet(block, target, out var a, out var b))
                {
                    var shape = Ggml.Shape(tensor);
                    var merged = Ggml.ggml_new_tensor_2d(mergedContext, (int)GgmlType.F32, shape[0], shape[1]);
                    Ggml.ggml_set_name(merged, name);
                    var values = Merge(model, tensor, a, b, lora.Scale);
                    var data = (float*)((GgmlTensor*)merged)->Data;
                    values.AsSpan().CopyTo(new Span<float>(data, values.Length));
                    Ggml.gguf_add_tensor(gguf, merged);
                }
                else
                {
                    Ggml.gguf_add_tensor(gguf, tensor); // data read from the backend buffer while writing
                }
            }
            // The same temporary files and quantizer as New-CkModel's: llama.cpp's own names, the output matrix
            // quantized as llama-quantize does.
            ModelQuantization.WriteModelFile(outputPath, quantization, unquantized =>
            {
                if (!Ggml.gguf_write_to_file(gguf, unquantized, false)) throw new IOException($"ggml could not write '{unquantized}'.");
            });
        }
        finally
        {
            Ggml.gguf_free(gguf);
            if (mergedContext != IntPtr.Zero) Ggml.ggml_free(mergedContext);
        }
    }

    private static bool TryParse(string name, out int block, out string target)
    {
        if (name == "output.weight") { block = LoraTargets.OutputBlock; target = LoraTargets.Output; return true; }
        var parts = name.Split('.');
        target = parts.Length == 4 ? parts[2] : "";
        block = -1;
        return parts.Length == 4 && parts[0] == "blk" && parts[3] == "weight" && int.TryParse(parts[1], out block);
    }

    /// <summary>W (any type, dequantized by get_rows) + scale * A·B, as F32 [n_in, n_out].</summary>
    private static float[] Merge(LlamaGraphModel model, IntPtr weight, IntPtr a, IntPtr b, float scale)
    {
        var shape = Ggml.Shape(weight);
        var ctx = model.NewComputeContext();
        try
        {
            var rows = Ggml.ggml_new_tensor_1d(ctx, (int)GgmlType.I32, shape[1]);
            Ggml.ggml_set_input(rows);
            var dense = Ggml.ggml_get_rows(ctx, weight, rows);
            var delta = Ggml.ggml_mul_mat(ctx, Ggml.ggml_cont(ctx, Ggml.ggml_transpose(ctx, a)), b);
            var merged = Ggml.ggml_add(ctx, dense, Ggml.ggml_scale(ctx, delta, scale));
            Ggml.ggml_set_output(merged);
            var graph = Ggml.ggml_new_graph_custom(ctx, 64, false);
            Ggml.ggml_build_forward_expand(graph, merged);
            Ggml.ggml_backend_sched_reset(model.Scheduler);
            if (!Ggml.ggml_backend_sched_alloc_graph(model.Scheduler, graph)) throw new OutOfMemoryException("Cannot allocate the merge graph.");
            var index = Enumerable.Range(0, (int)shape[1]).ToArray();
            fixed (int* p = index) Ggml.ggml_backend_tensor_set(rows, p, 0, (nuint)(index.Length * 4));
            if (Ggml.ggml_backend_sched_graph_compute(model.Scheduler, graph) != 0) throw new InvalidOperationException("The merge graph failed.");
            var result = new float[shape[0] * shape[1]];
            fixed (float* p = result) Ggml.ggml_backend_tensor_get(merged, p, 0, (nuint)(result.Length * 4L));
            return result;
        }
        finally
        {
            Ggml.ggml_backend_sched_reset(model.Scheduler);
            Ggml.ggml_free(ctx);
        }
    }
}
