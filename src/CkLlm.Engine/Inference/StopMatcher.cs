using System.Text;

namespace CkLlm.Engine.Inference;

/// <summary>
/// Accumulates generated text and finds stop strings even when they span several tokens. Text that could still be
/// the start of a stop string is held back until the next token decides, so a stop string never reaches the caller.
/// </summary>
internal sealed class StopMatcher
{
    private readonly string[] _stops;
    private readonly StringBuilder _text = new();
    private int _emitted;
    private bool _stopped;

    public StopMatcher(IEnumerable<string> stops) =>
        _stops = stops.Where(s => !string.IsNullOrEmpty(s)).Distinct(StringComparer.Ordinal).ToArray();

    /// <summary>All text accepted so far (without any stop string).</summary>
    public string Text => _text.ToString();

    /// <summary>Adds a decoded piece; returns the text now safe to show and whether a stop string completed.</summary>
    public (string Emit, bool Stopped) Append(string piece)
    {
        if (_stopped) return (string.Empty, true);
        _text.Append(piece);
        if (_stops.Length == 0) return (TakeUpTo(_text.Length), false);

        var all = _text.ToString();
        // A match can only start where it could not have completed before: within the longest stop of the unshown tail.
        var searchFrom = Math.Max(0, _emitted);
        var best = -1;
        foreach (var stop in _stops)
        {
            var at = all.IndexOf(stop, searchFrom, StringComparison.Ordinal);
            if (at >= 0 && (best < 0 || at < best)) best = at;
        }
        if (best >= 0)
        {
            _stopped = true;
            _text.Length = best;
            return (TakeUpTo(best), true);
        }
        return (TakeUpTo(all.Length - LongestStopPrefixAtEnd(all)), false);
    }

    /// <summary>Releases held-back text at the end of generation.</summary>
    public string Flush() => TakeUpTo(_text.Length);

    private string TakeUpTo(int end)
    {
        if (end <= _emitted) return string.Empty;
        var piece = _text.ToString(_emitted, end - _emitted);
        _emitted = end;
        return piece;
    }

    private int LongestStopPrefixAtEnd(string text)
    {
        var longest = 0;
        foreach (var stop in _stops)
        {
            for (var length = Math.Min(stop.Length - 1, text.Length - _emitted); length > longest; length--)
            {
                if (text.AsSpan(text.Length - length).SequenceEqual(stop.AsSpan(0, length))) { longest = length; break; }
            }
        }
        return longest;
    }
}
