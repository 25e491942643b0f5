using System.Globalization;

namespace CkLlm.Engine.Training;

/// <summary>One optimizer step's numbers, as written to the metrics CSV and carried by the result.</summary>
public sealed record FineTuneStepMetrics(int Step, int Epoch, double Loss, double LearningRate, double TokensPerSecond, double? ValidationLoss, double ElapsedSeconds);

/// <summary>
/// Appends every step's metrics to &lt;OutputPath&gt;.metrics.csv as it happens (flushed per line, so the file can be
/// watched during a run; a resumed run appends) and keeps them for the result and the loss plot.
/// </summary>
internal sealed class FineTuneMetricsWriter : IDisposable
{
    public const string Header = "step,epoch,train_loss,learning_rate,tokens_per_second,validation_loss,elapsed_seconds";
    private readonly StreamWriter? _writer;

    public List<FineTuneStepMetrics> Steps { get; } = new();
    public string? Path { get; }

    public FineTuneMetricsWriter(string? path, bool append)
    {
        Path = path;
        if (path is null) return;
        bool writeHeader = !append || !File.Exists(path) || new FileInfo(path).Length == 0;
        _writer = new StreamWriter(path, append) { AutoFlush = true };
        if (writeHeader) _writer.WriteLine(Header);
    }

    public void Add(FineTuneStepMetrics m)
    {
        Steps.Add(m);
        _writer?.WriteLine(string.Join(',',
            m.Step.ToString(CultureInfo.InvariantCulture), m.Epoch.ToString(CultureInfo.InvariantCulture),
            Format(m.Loss), Format(m.LearningRate), Format(m.TokensPerSecond),
            m.ValidationLoss is { } v ? Format(v) : "", Format(m.ElapsedSeconds)));
    }

    private static string Format(double value) => value.ToString("G6", CultureInfo.InvariantCulture);

    /// <summary>Reads a metrics CSV back (for tests and tools).</summary>
    public static List<FineTuneStepMetrics> Read(string path)
    {
        var result = new List<FineTuneStepMetrics>();
        foreach (var line in File.ReadLines(path).Skip(1))
        {
            var f = line.Split(',');
            if (f.Length < 7) continue;
            double D(string s) => double.Parse(s, CultureInfo.InvariantCulture);
            result.Add(new FineTuneStepMetrics(int.Parse(f[0], CultureInfo.InvariantCulture), int.Parse(f[1], CultureInfo.InvariantCulture),
                D(f[2]), D(f[3]), D(f[4]), f[5].Length > 0 ? D(f[5]) : null, D(f[6])));
        }
        return result;
    }

    public void Dispose() => _writer?.Dispose();
}
