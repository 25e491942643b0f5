using System.Runtime.InteropServices;

namespace CkLlm.Engine.Training.Native;

// Declarations follow ggml 0.18.0's headers (ggml.h, ggml-backend.h, ggml-alloc.h, ggml-cpu.h, ggml-opt.h, gguf.h),
// the version LLamaSharp.Backend.Cpu 0.30.0 ships. Opaque handles are IntPtr; ggml_tensor is read through
// GgmlTensor's layout. Every call that can GGML_ASSERT is guarded by managed checks in the callers.

/// <summary>ggml_init_params.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct GgmlInitParams
{
    public nuint MemSize;
    public IntPtr MemBuffer;
    [MarshalAs(UnmanagedType.U1)] public bool NoAlloc;
}

/// <summary>gguf_init_params.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct GgufInitParams
{
    [MarshalAs(UnmanagedType.U1)] public bool NoAlloc;
    public IntPtr Context; // struct ggml_context **
}

/// <summary>ggml_opt_optimizer_params: AdamW (alpha, beta1, beta2, eps, wd) then SGD (alpha, wd).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct GgmlOptimizerParams
{
    public float AdamAlpha, AdamBeta1, AdamBeta2, AdamEps, AdamWeightDecay;
    public float SgdAlpha, SgdWeightDecay;
}

/// <summary>ggml_opt_params.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct GgmlOptParams
{
    public IntPtr BackendSched;
    public IntPtr ContextCompute;
    public IntPtr Inputs;
    public IntPtr Outputs;
    public int LossType;
    public int BuildType;
    public int OptPeriod;
    public IntPtr GetOptParams;   // ggml_opt_get_optimizer_params
    public IntPtr GetOptParamsUserData;
    public int Optimizer;
}

/// <summary>The leading fields of struct ggml_tensor (x64 layout, GGML_MAX_DIMS 4, GGML_MAX_SRC 10).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct GgmlTensor
{
    public int Type;
    public IntPtr Buffer;
    public fixed long Ne[4];
    public fixed ulong Nb[4];
    public int Op;
    public fixed int OpParams[16];
    public int Flags;
    public fixed ulong Src[10];
    public IntPtr ViewSrc;
    public nuint ViewOffs;
    public IntPtr Data;
    public fixed byte Name[64];
}

internal static unsafe class Ggml
{
    public const int RopeTypeNormal = 0, RopeTypeNeox = 2;
    public const int LossCrossEntropy = 2;
    public const int BuildTypeOpt = 30;
    public const int OptimizerAdamW = 0;

    static Ggml() => GgmlLibrary.EnsureRegistered();

    /// <summary>Forces the library resolver to be registered before the first call from another class.</summary>
    public static void Initialize() { }

    public static long[] Shape(IntPtr tensor)
    {
        var t = (GgmlTensor*)tensor;
        return [t->Ne[0], t->Ne[1], t->Ne[2], t->Ne[3]];
    }

    public static int TypeOf(IntPtr tensor) => ((GgmlTensor*)tensor)->Type;

    public static string NameOf(IntPtr tensor) => Marshal.PtrToStringUTF8((IntPtr)((GgmlTensor*)tensor)->Name) ?? "";

    // ---- ggml.h: context, tensors ----
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_init(GgmlInitParams p);
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_free(IntPtr ctx);
    [DllImport(GgmlLibrary.Base)] public static extern nuint ggml_tensor_overhead();
    [DllImport(GgmlLibrary.Base)] public static extern nuint ggml_graph_overhead_custom(nuint size, [MarshalAs(UnmanagedType.U1)] bool grads);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_new_tensor_1d(IntPtr ctx, int type, long ne0);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_new_tensor_2d(IntPtr ctx, int type, long ne0, long ne1);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_dup_tensor(IntPtr ctx, IntPtr src);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_get_tensor(IntPtr ctx, [MarshalAs(UnmanagedType.LPUTF8Str)] string name);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_get_first_tensor(IntPtr ctx);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_get_next_tensor(IntPtr ctx, IntPtr tensor);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_set_name(IntPtr tensor, [MarshalAs(UnmanagedType.LPUTF8Str)] string name);
    [DllImport(GgmlLibrary.Base)] public static extern nuint ggml_nbytes(IntPtr tensor);
    [DllImport(GgmlLibrary.Base)] public static extern long ggml_nelements(IntPtr tensor);
    [DllImport(GgmlLibrary.Base)] public static extern nuint ggml_row_size(int type, long ne);
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_set_param(IntPtr tensor);
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_set_input(IntPtr tensor);
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_set_output(IntPtr tensor);
    [DllImport(GgmlLibrary.Base)] [return: MarshalAs(UnmanagedType.U1)] public static extern bool ggml_is_quantized(int type);

    // ---- ggml.h: operations ----
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_get_rows(IntPtr ctx, IntPtr a, IntPtr b);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_rms_norm(IntPtr ctx, IntPtr a, float eps);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_mul(IntPtr ctx, IntPtr a, IntPtr b);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_add(IntPtr ctx, IntPtr a, IntPtr b);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_mul_mat(IntPtr ctx, IntPtr a, IntPtr b);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_scale(IntPtr ctx, IntPtr a, float s);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_cast(IntPtr ctx, IntPtr a, int type);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_cont(IntPtr ctx, IntPtr a);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_cont_2d(IntPtr ctx, IntPtr a, long ne0, long ne1);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_reshape_2d(IntPtr ctx, IntPtr a, long ne0, long ne1);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_reshape_3d(IntPtr ctx, IntPtr a, long ne0, long ne1, long ne2);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_reshape_4d(IntPtr ctx, IntPtr a, long ne0, long ne1, long ne2, long ne3);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_repeat_4d(IntPtr ctx, IntPtr a, long ne0, long ne1, long ne2, long ne3);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_permute(IntPtr ctx, IntPtr a, int axis0, int axis1, int axis2, int axis3);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_transpose(IntPtr ctx, IntPtr a);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_out_prod(IntPtr ctx, IntPtr a, IntPtr b);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_cpy(IntPtr ctx, IntPtr a, IntPtr b);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_rope_ext(IntPtr ctx, IntPtr a, IntPtr positions, IntPtr freqFactors,
        int nDims, int mode, int nCtxOrig, float freqBase, float freqScale, float extFactor, float attnFactor, float betaFast, float betaSlow);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_diag_mask_inf(IntPtr ctx, IntPtr a, int nPast);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_soft_max_ext(IntPtr ctx, IntPtr a, IntPtr mask, float scale, float maxBias);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_swiglu_split(IntPtr ctx, IntPtr a, IntPtr b);

    // ---- ggml.h: graphs ----
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_new_graph_custom(IntPtr ctx, nuint size, [MarshalAs(UnmanagedType.U1)] bool grads);
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_build_forward_expand(IntPtr graph, IntPtr tensor);
    [DllImport(GgmlLibrary.Base)] public static extern int ggml_graph_n_nodes(IntPtr graph);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_graph_node(IntPtr graph, int i);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_graph_dup(IntPtr ctx, IntPtr graph, [MarshalAs(UnmanagedType.U1)] bool forceGrads);
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_build_backward_expand(IntPtr ctx, IntPtr graph, IntPtr* gradAccumulators);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_graph_get_grad(IntPtr graph, IntPtr node);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_cross_entropy_loss(IntPtr ctx, IntPtr logits, IntPtr labels);
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_set_loss(IntPtr tensor);
    /// <summary>AdamW step in place on <paramref name="param"/>; <paramref name="adamwParams"/> is F32[7]: alpha, beta1,
    /// beta2, eps, wd, 1/(1-beta1^t), 1/(1-beta2^t) (ggml 0.18 asserts exactly 7).</summary>
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_opt_step_adamw(IntPtr ctx, IntPtr param, IntPtr grad, IntPtr m, IntPtr v, IntPtr adamwParams);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_new_tensor_4d(IntPtr ctx, int type, long ne0, long ne1, long ne2, long ne3);

    // ---- ggml-backend.h / ggml-alloc.h / ggml-cpu.h ----
    [DllImport(GgmlLibrary.Cpu)] public static extern IntPtr ggml_backend_cpu_init();
    [DllImport(GgmlLibrary.Cpu)] public static extern void ggml_backend_cpu_set_n_threads(IntPtr backend, int threads);
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_backend_free(IntPtr backend);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_backend_get_default_buffer_type(IntPtr backend);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_backend_alloc_ctx_tensors(IntPtr ctx, IntPtr backend);
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_backend_buffer_free(IntPtr buffer);
    [DllImport(GgmlLibrary.Base)] public static extern nuint ggml_backend_buffer_get_size(IntPtr buffer);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_backend_buffer_get_base(IntPtr buffer);
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_backend_buffer_clear(IntPtr buffer, byte value);
    [DllImport(GgmlLibrary.Base)] public static extern int ggml_backend_graph_compute(IntPtr backend, IntPtr graph);
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_backend_tensor_set(IntPtr tensor, void* data, nuint offset, nuint size);
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_backend_tensor_memset(IntPtr tensor, byte value, nuint offset, nuint size);
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_backend_tensor_get(IntPtr tensor, void* data, nuint offset, nuint size);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_backend_sched_new(IntPtr* backends, IntPtr* bufferTypes, int count, nuint graphSize,
        [MarshalAs(UnmanagedType.U1)] bool parallel, [MarshalAs(UnmanagedType.U1)] bool opOffload);
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_backend_sched_free(IntPtr sched);
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_backend_sched_reset(IntPtr sched);
    [DllImport(GgmlLibrary.Base)] [return: MarshalAs(UnmanagedType.U1)] public static extern bool ggml_backend_sched_alloc_graph(IntPtr sched, IntPtr graph);
    [DllImport(GgmlLibrary.Base)] public static extern int ggml_backend_sched_graph_compute(IntPtr sched, IntPtr graph);
    /// <summary>callback: bool (*)(struct ggml_tensor * t, bool ask, void * user_data); zero turns it off.</summary>
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_backend_sched_set_eval_callback(IntPtr sched, IntPtr callback, IntPtr userData);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_op_desc(IntPtr tensor);

    // ---- ggml-opt.h ----
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_opt_init(GgmlOptParams p);
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_opt_free(IntPtr opt);
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_opt_prepare_alloc(IntPtr opt, IntPtr ctxCompute, IntPtr graph, IntPtr inputs, IntPtr outputs);
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_opt_alloc(IntPtr opt, [MarshalAs(UnmanagedType.U1)] bool backward);
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_opt_eval(IntPtr opt, IntPtr result);
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_opt_reset(IntPtr opt, [MarshalAs(UnmanagedType.U1)] bool optimizer);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_opt_labels(IntPtr opt);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_opt_loss(IntPtr opt);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_opt_grad_acc(IntPtr opt, IntPtr node);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr ggml_opt_result_init();
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_opt_result_free(IntPtr result);
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_opt_result_reset(IntPtr result);
    [DllImport(GgmlLibrary.Base)] public static extern void ggml_opt_result_loss(IntPtr result, double* loss, double* uncertainty);

    // ---- gguf.h ----
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr gguf_init_from_file([MarshalAs(UnmanagedType.LPUTF8Str)] string path, GgufInitParams p);
    [DllImport(GgmlLibrary.Base)] public static extern void gguf_free(IntPtr gguf);
    [DllImport(GgmlLibrary.Base)] public static extern long gguf_find_key(IntPtr gguf, [MarshalAs(UnmanagedType.LPUTF8Str)] string key);
    [DllImport(GgmlLibrary.Base)] public static extern int gguf_get_kv_type(IntPtr gguf, long keyId);
    [DllImport(GgmlLibrary.Base)] public static extern int gguf_get_arr_type(IntPtr gguf, long keyId);
    [DllImport(GgmlLibrary.Base)] public static extern nuint gguf_get_arr_n(IntPtr gguf, long keyId);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr gguf_get_val_data(IntPtr gguf, long keyId);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr gguf_get_val_str(IntPtr gguf, long keyId);
    [DllImport(GgmlLibrary.Base)] public static extern long gguf_get_n_tensors(IntPtr gguf);
    [DllImport(GgmlLibrary.Base)] public static extern long gguf_find_tensor(IntPtr gguf, [MarshalAs(UnmanagedType.LPUTF8Str)] string name);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr gguf_get_tensor_name(IntPtr gguf, long tensorId);
    [DllImport(GgmlLibrary.Base)] public static extern nuint gguf_get_tensor_offset(IntPtr gguf, long tensorId);
    [DllImport(GgmlLibrary.Base)] public static extern nuint gguf_get_tensor_size(IntPtr gguf, long tensorId);
    [DllImport(GgmlLibrary.Base)] public static extern nuint gguf_get_data_offset(IntPtr gguf);
    [DllImport(GgmlLibrary.Base)] public static extern IntPtr gguf_init_empty();
    [DllImport(GgmlLibrary.Base)] public static extern void gguf_set_kv(IntPtr gguf, IntPtr source);
    [DllImport(GgmlLibrary.Base)] public static extern void gguf_add_tensor(IntPtr gguf, IntPtr tensor);
    [DllImport(GgmlLibrary.Base)] public static extern void gguf_set_tensor_type(IntPtr gguf, [MarshalAs(UnmanagedType.LPUTF8Str)] string name, int type);
    [DllImport(GgmlLibrary.Base)] public static extern void gguf_set_tensor_data(IntPtr gguf, [MarshalAs(UnmanagedType.LPUTF8Str)] string name, void* data);
    [DllImport(GgmlLibrary.Base)] [return: MarshalAs(UnmanagedType.U1)] public static extern bool gguf_write_to_file(IntPtr gguf, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, [MarshalAs(UnmanagedType.U1)] bool onlyMeta);

    /// <summary>A native function pointer, for callbacks that ggml itself provides.</summary>
    public static IntPtr Export(string library, string name)
    {
        var handle = NativeLibrary.Load(Path.Combine(GgmlLibrary.Directory, library));
        return NativeLibrary.GetExport(handle, name);
    }
}
