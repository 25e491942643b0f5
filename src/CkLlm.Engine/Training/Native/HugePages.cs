using System.Runtime.InteropServices;

namespace CkLlm.Engine.Training.Native;

/// <summary>
/// Asks Linux to back large ggml buffers with transparent huge pages (madvise MADV_HUGEPAGE), which it does only on
/// request where THP is in "madvise" mode (Debian's and Ubuntu's default). A training step streams the weights, the
/// gradient accumulators and AdamW's moments (Full: the model's size four times over), and a run's first step
/// touches a compute buffer of hundreds of MB for the first time: 2 MB pages take 512 times fewer page faults and
/// TLB entries than 4 KB ones. Advice must come before the memory is first written to take effect at once.
/// </summary>
internal static partial class HugePages
{
    private const nuint HugePage = 2 << 20;
    private const int MadviseHugePage = 14;

    /// <summary>Off only for measurements that compare with and without.</summary>
    internal static bool Enabled { get; set; } = true;

    [LibraryImport("libc.so.6", SetLastError = true)]
    private static partial int madvise(IntPtr address, nuint length, int advice);

    /// <summary>Advises the whole 2 MB pages inside a ggml backend buffer (host memory on the CPU backend).</summary>
    public static void Advise(IntPtr buffer)
    {
        if (buffer == IntPtr.Zero) return;
        Advise(Ggml.ggml_backend_buffer_get_base(buffer), Ggml.ggml_backend_buffer_get_size(buffer));
    }

    private static void Advise(IntPtr start, nuint length)
    {
        if (!Enabled || !OperatingSystem.IsLinux() || start == IntPtr.Zero) return;
        // Pointer-sized arithmetic throughout: user-space addresses and buffer sizes never overflow it, so nothing is cast.
        nuint address = checked((nuint)start), first = (address + HugePage - 1) & ~(HugePage - 1), end = (address + length) & ~(HugePage - 1);
        // Only advice: a kernel without THP refuses it (EINVAL) and the buffer keeps its 4 KB pages.
        if (end > first) _ = madvise(checked((IntPtr)first), end - first, MadviseHugePage);
    }
}
