using System.Management.Automation;
using CkLlm.Engine.Training;

namespace CkLlm.Commands;

/// <summary>
/// A PowerShell job wrapping the fine-tuning worker process: Receive-Job returns the result object, progress records
/// carry epoch/step/loss/tokens per second/ETA, Stop-Job stops the worker after its current step with the checkpoint
/// saved, and a worker that dies (even kill -9) fails the job without touching the shell.
/// </summary>
public sealed class CkFineTuneJob : Job
{
    private readonly FineTuneWorker _worker;

    internal CkFineTuneJob(FineTuneWorker worker, string command) : base(command, "CkFineTune")
    {
        _worker = worker;
        PSJobTypeName = "CkFineTuneJob";
        SetJobState(JobState.Running);
        worker.Progress += OnProgress;
        worker.Completion.ContinueWith(OnCompleted, TaskScheduler.Default);
    }

    public int ProcessId => _worker.ProcessId;
    public string? CheckpointPath => _worker.Options.EffectiveCheckpointPath;
    public string OutputPath => _worker.Options.OutputPath;

    /// <summary>Where the private job spec was written (the worker deletes it once read; the job on exit).</summary>
    public string JobSpecPath => _worker.SpecPath;
    public FineTuneProgress? LastProgress => _worker.LastProgress;
    internal ProgressRecord? LatestProgress { get; private set; }

    public override string StatusMessage => LastProgress is { } p
        ? $"epoch {p.Epoch}/{p.Epochs}, step {p.Step}/{p.TotalSteps}, loss {p.Loss:F3}"
        : "starting";

    public override bool HasMoreData => Output.Count > 0 || Error.Count > 0 || Progress.Count > 0;
    public override string Location => Environment.MachineName;

    private void OnProgress(FineTuneProgress p)
    {
        int percent = p.TotalSteps > 0 ? Math.Clamp(100 * p.Step / p.TotalSteps, 0, 100) : 0;
        var validation = p.ValidationLoss is { } v ? $", val loss {v:F3}" : "";
        var record = new ProgressRecord(0, $"Fine-tuning {System.IO.Path.GetFileName(_worker.Options.ModelPath)} ({_worker.Options.Method})",
            p.Phase == "epoch"
                ? $"epoch {p.Epoch}/{p.Epochs} done at step {p.Step}/{p.TotalSteps}, mean loss {p.Loss:F3}{validation}, {p.TokensPerSecond:F0} tok/s"
                : $"step {p.Step}/{p.TotalSteps} (epoch {p.Epoch}/{p.Epochs}), loss {p.Loss:F3}{validation}, lr {p.LearningRate:G3}, {p.TokensPerSecond:F0} tok/s")
        {
            PercentComplete = percent,
            SecondsRemaining = p.Remaining is { } r ? (int)Math.Min(int.MaxValue, r.TotalSeconds) : -1,
        };
        LatestProgress = record;
        Progress.Add(record);
    }

    private void OnCompleted(Task<FineTuneResult> task)
    {
        if (task.IsCompletedSuccessfully)
        {
            Output.Add(PSObject.AsPSObject(task.Result));
            SetJobState(JobState.Completed);
        }
        else if (task.IsCanceled)
        {
            SetJobState(JobState.Stopped);
        }
        else
        {
            var error = task.Exception?.GetBaseException() ?? new InvalidOperationException("Fine-tuning failed.");
            var category = error is FineTuneFailedException { Kind: "ArgumentException" or "ArgumentOutOfRangeException" or "FileNotFoundException" }
                ? ErrorCategory.InvalidArgument
                : error is FineTuneFailedException { Kind: "NotSupportedException" } ? ErrorCategory.NotImplemented : ErrorCategory.OperationStopped;
            Error.Add(new ErrorRecord(error, "CkFineTune.Failed", category, _worker.Options.ModelPath));
            SetJobState(JobState.Failed);
        }
    }

    public override void StopJob()
    {
        if (IsFinishedState(JobStateInfo.State)) return;
        SetJobState(JobState.Stopping);
        _worker.Stop();
        // The worker finishes its step and writes the checkpoint; kill it only if it does not exit in time.
        if (!Finished.WaitOne(TimeSpan.FromSeconds(120))) _worker.Kill();
        Finished.WaitOne(TimeSpan.FromSeconds(10));
    }

    private static bool IsFinishedState(JobState state) =>
        state is JobState.Completed or JobState.Failed or JobState.Stopped;

    protected override void Dispose(bool disposing)
    {
        if (disposing) _worker.Dispose();
        base.Dispose(disposing);
    }
}
