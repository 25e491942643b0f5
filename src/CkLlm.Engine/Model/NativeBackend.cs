using System.Collections.Concurrent;
using System.Text;
using LLama.Native;

namespace CkLlm.Engine.Model;

/// <summary>Severity of a llama.cpp log line, mapped from llama.cpp's own levels.</summary>
public enum NativeLogLevel { Debug, Info, Warning, Error }

/// <summary>One line llama.cpp logged.</summary>
public readonly record struct NativeLogEntry(NativeLogLevel Level, string Text);

/// <summary>
/// One-time LLamaSharp native setup. llama.cpp's log goes into a bounded, thread-safe queue (never raw to stderr);
/// the cmdlets drain it to Verbose/Debug on the pipeline thread, because native callbacks arrive on any thread.
/// </summary>
public static partial class NativeBackend
{
    private const int MaxQueuedLogLines = 2000;
    private static readonly object Gate = new();
    private static readonly ConcurrentQueue<NativeLogEntry> LogQueue = new();
    private static readonly StringBuilder PartialLine = new();
    private static NativeLogLevel _partialLevel = NativeLogLevel.Info;
    private static bool _initialized;
    private static string? _libraryDirectory;

    /// <summary>Configures LLamaSharp (log callback) before its first native call. Safe to call many times.</summary>
    public static void EnsureInitialized()
    {
        if (Volatile.Read(ref _initialized)) return;
        lock (Gate)
        {
            if (_initialized) return;
            if (!NativeLibraryConfig.LLama.LibraryHasLoaded)
            {
                BoundOpenMpSpinning();
                // Keep LLamaSharp's own selection (CPU, best AVX level it detects); only route the log.
                NativeLibraryConfig.All.WithLogCallback(OnNativeLog);
            }
            // Load the library now (NativeApi's static constructor does it), so load failures surface here and
            // entry points outside NativeApi (quantize parameters, our own DllImports) find it loaded.
            NativeApi.llama_empty_call();
            NativeLogConfig.llama_log_set(OnNativeLog);
            _initialized = true;
        }
    }

    /// <summary>The spin rounds libgomp (ggml's OpenMP) waits at a barrier before it sleeps, unless the user set
    /// GOMP_SPINCOUNT or OMP_WAIT_POLICY.</summary>
    internal const string OpenMpSpinCount = "1000";

    /// <summary>
    /// Why: ggml's CPU backend meets an OpenMP barrier after every graph node (hundreds per decode). With as many
    /// compute threads as cores, libgomp spins 300,000 rounds (milliseconds) at each one before sleeping, so whenever
    /// another thread takes a core - Kestrel writing a token, a client, another process - the waiting compute thread
    /// burns its whole slice while its partner cannot run. Measured here (2 cores, load ~15, Medium model): the
    /// server's batch decode took ~980 ms per step with the default and ~45 ms with 1,000 rounds (~20 µs). libgomp
    /// reads the variable once, when it is loaded, so it is set in the native environment before llama.cpp loads.
    /// </summary>
    internal static void BoundOpenMpSpinning()
    {
        if (!OperatingSystem.IsLinux()) return;
        if (Environment.GetEnvironmentVariable("GOMP_SPINCOUNT") is not null || Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is not null) return;
        _ = SetNativeEnvironment("GOMP_SPINCOUNT", OpenMpSpinCount, overwrite: 0);
    }

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = System.Runtime.InteropServices.StringMarshalling.Utf8)]
    private static partial int SetNativeEnvironment(string name, string value, int overwrite);

    /// <summary>The directory LLamaSharp loaded libllama (and its ggml libraries) from; null before loading.</summary>
    public static string? NativeLibraryDirectory
    {
        get
        {
            EnsureInitialized();
            if (_libraryDirectory is not null) return _libraryDirectory;
            _libraryDirectory = FindLoadedLibraryDirectory();
            return _libraryDirectory;
        }
    }

    /// <summary>Takes every queued native log line (oldest first).</summary>
    public static IReadOnlyList<NativeLogEntry> DrainLog()
    {
        if (LogQueue.IsEmpty) return [];  // the common case, checked once per generated token
        var lines = new List<NativeLogEntry>();
        while (LogQueue.TryDequeue(out var entry)) lines.Add(entry);
        return lines;
    }

    private static void OnNativeLog(LLamaLogLevel level, string message)
    {
        // llama.cpp splits lines across calls and uses Continue for the tail of the previous line.
        lock (PartialLine)
        {
            if (level != LLamaLogLevel.Continue)
            {
                _partialLevel = level switch
                {
                    LLamaLogLevel.Error => NativeLogLevel.Error,
                    LLamaLogLevel.Warning => NativeLogLevel.Warning,
                    LLamaLogLevel.Info => NativeLogLevel.Info,
                    _ => NativeLogLevel.Debug,
                };
            }
            PartialLine.Append(message);
            if (!message.EndsWith('\n')) return;
            var text = PartialLine.ToString().TrimEnd('\n', '\r');
            PartialLine.Clear();
            if (text.Length == 0) return;
            LogQueue.Enqueue(new NativeLogEntry(_partialLevel, text));
            while (LogQueue.Count > MaxQueuedLogLines) LogQueue.TryDequeue(out _);
        }
    }

    private static string? FindLoadedLibraryDirectory()
    {
        // The kernel's map of this process names the exact file the loader opened (LLamaSharp picks the AVX variant).
        const string maps = "/proc/self/maps";
        if (File.Exists(maps))
        {
            foreach (var line in File.ReadLines(maps))
            {
                var slash = line.IndexOf('/');
                if (slash < 0) continue;
                var file = line[slash..];
                if (System.IO.Path.GetFileName(file) == "libllama.so") return System.IO.Path.GetDirectoryName(file);
            }
        }
        return null;
    }
}
