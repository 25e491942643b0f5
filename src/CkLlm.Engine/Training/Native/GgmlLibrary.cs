using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using System.Runtime.Loader;

namespace CkLlm.Engine.Training.Native;

/// <summary>
/// Points the engine's ggml P/Invokes at the very libraries LLamaSharp loaded, so the process holds ONE ggml
/// instance (two copies would each keep their own backend registry and type traits). LLamaSharp keeps its natives
/// in <c>runtimes/linux-x64/native/&lt;cpu variant&gt;/</c> next to its assembly and picks the variant itself; this
/// class asks the process which copy is mapped (<c>/proc/self/maps</c>) after forcing LLamaSharp to load, and only
/// falls back to the variant choice LLamaSharp makes when nothing is mapped yet.
/// </summary>
/// <remarks>
/// Resolution hooks the engine assembly's <see cref="AssemblyLoadContext.ResolvingUnmanagedDll"/> event rather than
/// <see cref="NativeLibrary.SetDllImportResolver"/>: an assembly can have only one DllImport resolver, and another
/// part of the engine may own it; the event accepts any number of handlers and only sees names default probing
/// could not load. LLamaSharp's own imports live in LLamaSharp's assembly and are never touched.
/// </remarks>
internal static class GgmlLibrary
{
    public const string Base = "ckllm-ggml-base";
    public const string Cpu = "ckllm-ggml-cpu";

    private static readonly object Gate = new();
    private static string? _directory;
    private static bool _registered;

    /// <summary>The folder the shared ggml libraries are loaded from.</summary>
    public static string Directory
    {
        get
        {
            EnsureRegistered();
            return _directory!;
        }
    }

    /// <summary>Idempotent; call before the first ggml P/Invoke.</summary>
    public static void EnsureRegistered()
    {
        lock (Gate)
        {
            if (_registered) return;
            // Any LLamaSharp native call makes it load libllama (and with it libggml*) from its chosen folder.
            LLama.Native.NativeApi.llama_empty_call();
            _directory = FindLoadedDirectory() ?? FindVariantDirectory()
                ?? throw new DllNotFoundException("Cannot find the ggml libraries LLamaSharp uses (libggml-base.so).");
            var context = AssemblyLoadContext.GetLoadContext(typeof(GgmlLibrary).Assembly) ?? AssemblyLoadContext.Default;
            context.ResolvingUnmanagedDll += Resolve;
            _registered = true;
        }
    }

    private static IntPtr Resolve(Assembly assembly, string name)
    {
        if (assembly != typeof(GgmlLibrary).Assembly) return IntPtr.Zero;
        var file = name switch
        {
            Base => "libggml-base.so",
            Cpu => "libggml-cpu.so",
            _ => null,
        };
        return file is null ? IntPtr.Zero : NativeLibrary.Load(Path.Combine(_directory!, file));
    }

    /// <summary>The directory of the mapped libggml-base.so, if the process has one.</summary>
    internal static string? FindLoadedDirectory()
    {
        const string maps = "/proc/self/maps";
        if (!File.Exists(maps)) return null;
        foreach (var line in File.ReadLines(maps))
        {
            int slash = line.IndexOf('/');
            if (slash < 0) continue;
            var path = line[slash..].Trim();
            if (Path.GetFileName(path) == "libggml-base.so" && File.Exists(Path.Combine(Path.GetDirectoryName(path)!, "libggml-cpu.so")))
                return Path.GetDirectoryName(path);
        }
        return null;
    }

    /// <summary>LLamaSharp's own choice: the best CPU variant present next to its assembly.</summary>
    private static string? FindVariantDirectory()
    {
        var root = Path.GetDirectoryName(typeof(LLama.LLamaWeights).Assembly.Location);
        if (string.IsNullOrEmpty(root)) return null;
        var variants = new List<string>();
        if (Avx512F.IsSupported) variants.Add("avx512");
        if (Avx2.IsSupported) variants.Add("avx2");
        if (Avx.IsSupported) variants.Add("avx");
        variants.Add("noavx");
        return variants.Select(v => Path.Combine(root, "runtimes", "linux-x64", "native", v))
            .FirstOrDefault(d => File.Exists(Path.Combine(d, "libggml-base.so")));
    }
}
