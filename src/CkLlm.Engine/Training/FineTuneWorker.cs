using System.Diagnostics;

namespace CkLlm.Engine.Training;

/// <summary>
/// Runs a fine-tuning job in the CkLlm.Worker process (published next to the engine), so a native abort inside ggml
/// ends only that process. Progress, the result and errors arrive as events from the worker's JSON lines;
/// <see cref="Stop"/> asks the worker to stop at the next step (it writes its checkpoint first), <see cref="Kill"/>
/// ends it at once (the last completed checkpoint stays on disk).
/// </summary>
public sealed class FineTuneWorker : IDisposable
{
    private readonly Process _process;
    private readonly string _specPath;
    private readonly TaskCompletionSource<FineTuneResult> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly System.Text.StringBuilder _stderrTail = new();
    private bool _stopRequested;

    public event Action<FineTuneProgress>? Progress;

    public FineTuneOptions Options { get; }
    public int ProcessId => _process.Id;
    public FineTuneProgress? LastProgress { get; private set; }

    /// <summary>The private job spec (mode 0600 in a 0700 directory) while the worker runs; deleted when it ends.</summary>
    public string SpecPath => _specPath;

    /// <summary>Completes with the result; faults with <see cref="FineTuneFailedException"/> or <see cref="OperationCanceledException"/>.</summary>
    public Task<FineTuneResult> Completion => _completion.Task;

    private FineTuneWorker(FineTuneOptions options, Process process, string specPath)
    {
        Options = options;
        _process = process;
        _specPath = specPath;
    }

    /// <summary>The worker executable next to the engine assembly.</summary>
    public static string WorkerPath =>
        Path.Combine(Path.GetDirectoryName(typeof(FineTuneWorker).Assembly.Location)!, "CkLlm.Worker.dll");

    public static FineTuneWorker Start(FineTuneOptions options)
    {
        var dll = WorkerPath;
        if (!File.Exists(dll)) throw new FileNotFoundException($"The fine-tuning worker is missing ('{dll}'). Rebuild the module with ./build.ps1.", dll);
        var spec = FineTuneJobProtocol.WritePrivateSpec(options);
        var apphost = Path.ChangeExtension(dll, null);
        var start = File.Exists(apphost)
            ? new ProcessStartInfo(apphost) { ArgumentList = { spec } }
            : new ProcessStartInfo(DotnetHost()) { ArgumentList = { dll, spec } };
        start.RedirectStandardInput = true;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var worker = new FineTuneWorker(options, process, spec);
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) worker.OnLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) worker.OnError(e.Data); };
        process.Exited += (_, _) => worker.OnExited();
        try
        {
            if (!process.Start()) throw new InvalidOperationException("The fine-tuning worker did not start.");
        }
        catch
        {
            FineTuneJobProtocol.DeleteSpec(spec);
            throw;
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return worker;
    }

    private static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";

    private void OnLine(string line)
    {
        var message = FineTuneJobProtocol.Deserialize(line);
        switch (message?.Type)
        {
            case "progress" when message.Progress is not null:
                LastProgress = message.Progress;
                Progress?.Invoke(message.Progress);
                break;
            case "result" when message.Result is not null:
                _completion.TrySetResult(message.Result);
                break;
            case "cancelled":
                _completion.TrySetCanceled();
                break;
            case "error":
                _completion.TrySetException(new FineTuneFailedException(message.Error ?? "The fine-tuning worker failed.", message.ErrorKind));
                break;
        }
    }

    private void OnError(string line)
    {
        lock (_stderrTail)
        {
            _stderrTail.AppendLine(line);
            if (_stderrTail.Length > 8000) _stderrTail.Remove(0, _stderrTail.Length - 8000);
        }
    }

    private void OnExited()
    {
        // Output events may still be in flight when Exited fires; WaitForExit() drains them.
        try { _process.WaitForExit(); } catch (InvalidOperationException) { }
        FineTuneJobProtocol.DeleteSpec(_specPath);
        if (_stopRequested) { _completion.TrySetCanceled(); return; }
        string tail;
        lock (_stderrTail) tail = _stderrTail.ToString();
        var lastLines = string.Join(Environment.NewLine, tail.Split('\n').Where(l => l.Trim().Length > 0).TakeLast(5));
        _completion.TrySetException(new FineTuneFailedException(
            $"The fine-tuning worker ended with exit code {SafeExitCode()} without a result. {lastLines}".Trim(), "WorkerExited"));
    }

    private int SafeExitCode()
    {
        try { return _process.ExitCode; } catch (InvalidOperationException) { return -1; }
    }

    /// <summary>Asks the worker to stop after the current step; it saves its checkpoint, then exits.</summary>
    public void Stop()
    {
        _stopRequested = true;
        try
        {
            _process.StandardInput.WriteLine(FineTuneJobProtocol.StopCommand);
            _process.StandardInput.Flush();
        }
        catch (Exception e) when (e is IOException or InvalidOperationException) { }
    }

    /// <summary>Ends the worker at once.</summary>
    public void Kill()
    {
        _stopRequested = true;
        try { _process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
    }

    public bool HasExited
    {
        get { try { return _process.HasExited; } catch (InvalidOperationException) { return true; } }
    }

    public void Dispose()
    {
        if (!HasExited) Kill();
        FineTuneJobProtocol.DeleteSpec(_specPath);
        _process.Dispose();
    }
}

public sealed class FineTuneFailedException(string message, string? kind) : Exception(message)
{
    /// <summary>The exception type the worker reported (e.g. ArgumentException), or WorkerExited.</summary>
    public string? Kind { get; } = kind;
}
