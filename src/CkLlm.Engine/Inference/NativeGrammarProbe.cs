using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;
using CkLlm.Engine.Model;

namespace CkLlm.Engine.Inference;

/// <summary>
/// Second line of defence behind <see cref="GbnfGrammar"/>: asks the loaded llama.cpp itself to build the grammar
/// sampler and checks for null, before LLamaSharp (which does not check) ever adds it to a sampler chain. The probe
/// sampler is freed at once. Calls go to the very libllama LLamaSharp loaded (one llama/ggml instance per process).
/// </summary>
internal static partial class NativeGrammarProbe
{
    private const string Library = "ckllm-llama";
    private static readonly object Gate = new();
    private static bool _registered;

    /// <summary>Throws <see cref="GrammarException"/> when llama.cpp cannot build a sampler for the grammar.</summary>
    public static void Check(LoadedModel model, string grammar, string root = "root")
    {
        EnsureRegistered();
        using var use = model.AcquireUse();
        var modelHandle = model.Weights.NativeHandle;
        bool added = false;
        try
        {
            modelHandle.DangerousAddRef(ref added);
            var vocab = llama_model_get_vocab(modelHandle.DangerousGetHandle());
            if (vocab == IntPtr.Zero) throw new InvalidOperationException("llama.cpp returned no vocabulary for the model.");
            NativeBackend.DrainLog(); // so the lines read below are this probe's
            var sampler = llama_sampler_init_grammar(vocab, grammar, root);
            if (sampler == IntPtr.Zero)
            {
                var reasons = NativeBackend.DrainLog().Where(l => l.Level >= NativeLogLevel.Warning).Select(l => l.Text).ToList();
                throw new GrammarException("llama.cpp could not parse the grammar" + (reasons.Count > 0 ? ": " + string.Join(" ", reasons) : "."));
            }
            llama_sampler_free(sampler);
        }
        finally
        {
            if (added) modelHandle.DangerousRelease();
        }
    }

    private static void EnsureRegistered()
    {
        lock (Gate)
        {
            if (_registered) return;
            var context = AssemblyLoadContext.GetLoadContext(typeof(NativeGrammarProbe).Assembly) ?? AssemblyLoadContext.Default;
            context.ResolvingUnmanagedDll += Resolve;
            _registered = true;
        }
    }

    private static IntPtr Resolve(Assembly assembly, string name)
    {
        if (assembly != typeof(NativeGrammarProbe).Assembly || name != Library) return IntPtr.Zero;
        var directory = NativeBackend.NativeLibraryDirectory
            ?? throw new DllNotFoundException("LLamaSharp has not loaded libllama.so.");
        return NativeLibrary.Load(Path.Combine(directory, "libllama.so"));
    }

    [LibraryImport(Library)]
    private static partial IntPtr llama_model_get_vocab(IntPtr model);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr llama_sampler_init_grammar(IntPtr vocab, string grammar, string root);

    [LibraryImport(Library)]
    private static partial void llama_sampler_free(IntPtr sampler);
}
