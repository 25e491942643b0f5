using System.Runtime.InteropServices;

namespace CkLlm.Server.Serving;

/// <summary>
/// Releases the OpenMP worker threads (libgomp, ggml's CPU backend) that a long-lived decoding thread keeps between
/// parallel regions.
/// </summary>
/// <remarks>
/// Why: libgomp keeps a pool of worker threads for every thread that ever ran a parallel region, and counts the
/// workers of all pools, idle ones too. While that count exceeds the CPUs, every barrier in the process spins 100
/// rounds instead of GOMP_SPINCOUNT (see NativeBackend) before it sleeps on a futex, so ggml's per-node barriers turn
/// into sleeps and wake-ups. A served model's batch loop is a long-lived such thread: with one model served, each
/// Invoke-CkCompletion (whose worker thread brings a pool of its own) ran throttled beside the idle loop while the
/// server's decodes did not; with two or more models served, every decode in the process ran throttled. Releasing the
/// pool whenever a loop goes idle keeps the count at the threads that are decoding; the next decode starts its workers
/// again (one thread start per compute thread, microseconds).
/// </remarks>
internal static partial class OpenMpThreadPool
{
    private const string Library = "libgomp.so.1";
    /// <summary>omp_pause_soft: release threads, keep nothing else in a state needing re-initialisation.</summary>
    private const int PauseSoft = 1;
    private static int _unavailable;

    /// <summary>Releases the calling thread's OpenMP pool; false when there is no libgomp (another OpenMP runtime or
    /// platform), in which case nothing is done ever again.</summary>
    public static bool ReleaseCallingThreadPool()
    {
        if (!OperatingSystem.IsLinux() || Volatile.Read(ref _unavailable) != 0) return false;
        try
        {
            return PauseResourceAll(PauseSoft) == 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            Volatile.Write(ref _unavailable, 1);
            return false;
        }
    }

    [LibraryImport(Library, EntryPoint = "omp_pause_resource_all")]
    private static partial int PauseResourceAll(int kind);
}
