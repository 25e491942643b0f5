using System.ClientModel.Primitives;
using System.Globalization;

namespace CkLlm.Engine.Remote;

/// <summary>
/// Retries a request the server answered 429 (rate limited) or 503 (busy, loading): after the server's Retry-After
/// (retry-after-ms, or Retry-After in seconds or as an HTTP date), else after 0.5 s, 1 s, 2 s... with jitter. A
/// Retry-After longer than <see cref="RemoteModelOptions.MaxRetryAfter"/> is not waited for, so the caller learns the
/// time at once. Nothing else is retried: a refused connection or a wrong key fails fast.
/// </summary>
internal sealed class RemoteRetryPolicy(int maxRetries, TimeSpan maxRetryAfter) : ClientRetryPolicy(maxRetries)
{
    private static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan LongestBackoff = TimeSpan.FromSeconds(8);

    protected override bool ShouldRetry(PipelineMessage message, Exception? exception) =>
        exception is null && message.Response is { Status: 429 or 503 } response
        && (RetryAfter(response) is not { } wait || wait <= maxRetryAfter)
        && base.ShouldRetry(message, exception); // counts the tries against maxRetries

    protected override ValueTask<bool> ShouldRetryAsync(PipelineMessage message, Exception? exception) =>
        ValueTask.FromResult(ShouldRetry(message, exception));

    protected override TimeSpan GetNextDelay(PipelineMessage message, int tryCount)
    {
        if (message.Response is { } response && RetryAfter(response) is { } wait) return wait;
        var backoff = FirstBackoff * Math.Pow(2, Math.Max(0, tryCount - 1));
        if (backoff > LongestBackoff) backoff = LongestBackoff;
        // Up to 20% jitter so clients rate-limited together do not come back together.
        return backoff * (1 + (Random.Shared.NextDouble() * 0.2));
    }

    /// <summary>How long the server asked to wait: retry-after-ms, or Retry-After as seconds or an HTTP date.</summary>
    public static TimeSpan? RetryAfter(PipelineResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        if (response.Headers.TryGetValue("retry-after-ms", out var ms)
            && double.TryParse(ms, NumberStyles.Float, CultureInfo.InvariantCulture, out var milliseconds) && milliseconds >= 0)
            return TimeSpan.FromMilliseconds(milliseconds);
        if (!response.Headers.TryGetValue("Retry-After", out var value) || string.IsNullOrWhiteSpace(value)) return null;
        if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && seconds >= 0)
            return TimeSpan.FromSeconds(seconds);
        if (DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var when))
        {
            var delay = when - DateTimeOffset.UtcNow;
            return delay > TimeSpan.Zero ? delay : TimeSpan.Zero;
        }
        return null;
    }
}
