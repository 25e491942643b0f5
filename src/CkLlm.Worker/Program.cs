using CkLlm.Engine.Training;

// Usage: CkLlm.Worker <spec.json>. See FineTuneJobProtocol for the stdin/stdout protocol.
if (args.Length != 1 || !File.Exists(args[0]))
{
    Console.Error.WriteLine("usage: CkLlm.Worker <job-spec.json>");
    return 2;
}

var stdout = Console.Out;
var gate = new object();
void Send(FineTuneMessage message)
{
    lock (gate)
    {
        stdout.WriteLine(FineTuneJobProtocol.Serialize(message));
        stdout.Flush();
    }
}

// llama.cpp and ggml log to stdout/stderr natively; keep our stdout for protocol lines only.
LLama.Native.NativeLogConfig.llama_log_set((level, message) => Console.Error.Write(message));

using var cancellation = new CancellationTokenSource();
var watcher = new Thread(() =>
{
    try
    {
        while (Console.In.ReadLine() is { } line)
            if (line.Trim() == FineTuneJobProtocol.StopCommand) break;
    }
    catch (IOException) { }
    cancellation.Cancel(); // "stop" or the parent went away: stop at the next step, keeping the checkpoint
}) { IsBackground = true };
watcher.Start();

try
{
    var options = FineTuneJobProtocol.ReadSpec(args[0]);
    FineTuneJobProtocol.DeleteSpec(args[0]); // the training text stays on disk no longer than needed
    var result = FineTuner.Run(options, new Progress(Send), cancellation.Token);
    Send(new FineTuneMessage("result", Result: result));
    return 0;
}
catch (OperationCanceledException)
{
    Send(new FineTuneMessage("cancelled"));
    return 3;
}
catch (Exception e)
{
    Send(new FineTuneMessage("error", Error: e.Message, ErrorKind: e.GetType().Name));
    return 1;
}

/// <summary>Reports synchronously (IProgress's default implementation posts to the thread pool and reorders lines).</summary>
file sealed class Progress(Action<FineTuneMessage> send) : IProgress<FineTuneProgress>
{
    public void Report(FineTuneProgress value) => send(new FineTuneMessage("progress", Progress: value));
}
