using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace CkLlm.Engine.Serving.Mcp;

/// <summary>
/// Takes the process's standard output for one writer (the MCP stdio transport) and sends everything else that would
/// reach it to standard error, at both levels where output is written:
/// <list type="bullet">
/// <item>file descriptor 1 becomes a copy of 2, so native code (llama.cpp, ggml, a printf anywhere) writes to stderr;
/// the protocol writes to a private duplicate of the original descriptor;</item>
/// <item><see cref="Console.Out"/> is replaced by a stderr writer, because .NET's console writer (and PowerShell's host,
/// which writes through it: Write-Host, warnings, verbose, progress text) holds its own duplicate of descriptor 1 that
/// the first step cannot reach.</item>
/// </list>
/// Dispose puts both back. A writer someone took from <see cref="Console.Out"/> during the claim (PowerShell's host
/// keeps the one it first used) follows: it writes to stderr during the claim and to the original stdout after it.
/// One claim at a time per process.
/// </summary>
public sealed partial class StandardOutputClaim : IDisposable
{
    private const int StandardOutput = 1;
    private const int StandardError = 2;
    private static int _claimed;

    private readonly int _protocolDescriptor;
    private readonly TextWriter _previousOut;
    private readonly RedirectedWriter _redirected;
    private int _disposed;

    private StandardOutputClaim(int protocolDescriptor, TextWriter previousOut, RedirectedWriter redirected)
    {
        _protocolDescriptor = protocolDescriptor;
        _previousOut = previousOut;
        _redirected = redirected;
        Protocol = new FileStream(new SafeFileHandle(protocolDescriptor, ownsHandle: false), FileAccess.Write, bufferSize: 0);
    }

    /// <summary>The original standard output, for protocol messages only.</summary>
    public Stream Protocol { get; }

    /// <exception cref="InvalidOperationException">Standard output is already claimed (a second stdio server).</exception>
    /// <exception cref="IOException">The descriptors could not be duplicated.</exception>
    public static StandardOutputClaim Claim()
    {
        if (OperatingSystem.IsWindows()) throw new PlatformNotSupportedException("The MCP stdio server needs a Unix-like system.");
        if (Interlocked.Exchange(ref _claimed, 1) == 1)
            throw new InvalidOperationException("Standard output already carries an MCP stdio server in this process.");
        try
        {
            Console.Out.Flush();
            var protocol = Dup(StandardOutput);
            if (protocol < 0) throw new IOException($"dup(1) failed (errno {Marshal.GetLastPInvokeError()}).");
            if (Dup2(StandardError, StandardOutput) < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                _ = Close(protocol);
                throw new IOException($"dup2(2, 1) failed (errno {errno}).");
            }
            var previous = Console.Out;
            var redirected = new RedirectedWriter(Console.Error);
            Console.SetOut(redirected);
            return new StandardOutputClaim(protocol, previous, redirected);
        }
        catch
        {
            Volatile.Write(ref _claimed, 0);
            throw;
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        Protocol.Dispose();
        Console.Error.Flush();
        _ = Dup2(_protocolDescriptor, StandardOutput);
        _redirected.Target = _previousOut;
        Console.SetOut(_previousOut);
        _ = Close(_protocolDescriptor);
        Volatile.Write(ref _claimed, 0);
    }

    /// <summary>Writes to <see cref="Target"/>, which the claim switches back to stdout when it ends.</summary>
    private sealed class RedirectedWriter(TextWriter target) : TextWriter
    {
        private volatile TextWriter _target = target;

        public TextWriter Target
        {
            get => _target;
            set => _target = value;
        }

        public override Encoding Encoding => _target.Encoding;
        public override void Write(char value) => _target.Write(value);
        public override void Write(string? value) => _target.Write(value);
        public override void Write(char[] buffer, int index, int count) => _target.Write(buffer, index, count);
        public override void Write(ReadOnlySpan<char> buffer) => _target.Write(buffer);
        public override void WriteLine(string? value) => _target.WriteLine(value);
        public override void WriteLine(ReadOnlySpan<char> buffer) => _target.WriteLine(buffer);
        public override void Flush() => _target.Flush();
    }

    [LibraryImport("libc", EntryPoint = "dup", SetLastError = true)]
    private static partial int Dup(int descriptor);

    [LibraryImport("libc", EntryPoint = "dup2", SetLastError = true)]
    private static partial int Dup2(int descriptor, int target);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int descriptor);
}
