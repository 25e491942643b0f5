namespace CkLlm.Server.Serving;

/// <summary>
/// Where one served model's batch loop spent its time since the server started (CkServer.Batching): how many steps
/// it ran, how many tokens each llama.cpp decode carried, and the wall time of each phase of a step. It shows whether
/// concurrent requests really decode together (<see cref="MeanGeneratingSequences"/>) and what a step costs besides
/// the decode.
/// </summary>
/// <param name="Model">The served model.</param>
/// <param name="Steps">Decodes run (one per step).</param>
/// <param name="DecodedTokens">Tokens in those decodes: prompt tokens plus one per generating sequence and step.</param>
/// <param name="GeneratedTokens">Tokens decoded for generating sequences (one per sequence and step).</param>
/// <param name="Decode">Time in llama_decode.</param>
/// <param name="Sampling">Time sampling each sequence's next token and handing out its text (stop strings, the
/// request's stream).</param>
/// <param name="Scheduling">Time taking new requests, assigning slots and building each batch.</param>
public sealed record BatchingStatistics(string Model, long Steps, long DecodedTokens, long GeneratedTokens, TimeSpan Decode, TimeSpan Sampling, TimeSpan Scheduling)
{
    /// <summary>Generating sequences per step: how many requests decoded together on average.</summary>
    public double MeanGeneratingSequences => Steps == 0 ? 0 : (double)GeneratedTokens / Steps;

    /// <summary>Tokens per decode, prompt chunks included.</summary>
    public double MeanTokensPerStep => Steps == 0 ? 0 : (double)DecodedTokens / Steps;

    /// <summary>Milliseconds per step in llama_decode.</summary>
    public double DecodeMillisecondsPerStep => Steps == 0 ? 0 : Decode.TotalMilliseconds / Steps;

    /// <summary>Milliseconds per step sampling and handing out text, all sequences together.</summary>
    public double SamplingMillisecondsPerStep => Steps == 0 ? 0 : Sampling.TotalMilliseconds / Steps;

    /// <summary>Milliseconds per step building the batch.</summary>
    public double SchedulingMillisecondsPerStep => Steps == 0 ? 0 : Scheduling.TotalMilliseconds / Steps;
}

/// <summary>The batch loop's running totals; written by the loop thread, read by anyone.</summary>
internal sealed class BatchingCounters
{
    private long _steps, _decodedTokens, _generatedTokens, _decodeTicks, _samplingTicks, _schedulingTicks;

    public void AddStep(int decodedTokens, int generatedTokens, long schedulingTicks, long decodeTicks, long samplingTicks)
    {
        Interlocked.Increment(ref _steps);
        Interlocked.Add(ref _decodedTokens, decodedTokens);
        Interlocked.Add(ref _generatedTokens, generatedTokens);
        Interlocked.Add(ref _schedulingTicks, schedulingTicks);
        Interlocked.Add(ref _decodeTicks, decodeTicks);
        Interlocked.Add(ref _samplingTicks, samplingTicks);
    }

    public BatchingStatistics Snapshot(string model) => new(model,
        Interlocked.Read(ref _steps), Interlocked.Read(ref _decodedTokens), Interlocked.Read(ref _generatedTokens),
        Elapsed(ref _decodeTicks), Elapsed(ref _samplingTicks), Elapsed(ref _schedulingTicks));

    private static TimeSpan Elapsed(ref long ticks) => System.Diagnostics.Stopwatch.GetElapsedTime(0, Interlocked.Read(ref ticks));
}
