namespace CkLlm.Engine.Training;

/// <summary>Draws a run's loss curve (training loss per step, validation loss where measured) to a PNG with ScottPlot.</summary>
public static class LossPlot
{
    /// <summary>Writes the PNG and returns its path, or null when it could not be drawn (the run's result does not
    /// depend on the picture; the reason goes to stderr, which the worker forwards to the job's verbose stream).</summary>
    public static string? TryDraw(IReadOnlyList<FineTuneStepMetrics> steps, string path, string title)
    {
        try
        {
            Draw(steps, path, title);
            return path;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Console.Error.WriteLine($"The loss curve could not be drawn to '{path}': {e.GetBaseException().Message}");
            return null;
        }
    }

    public static void Draw(IReadOnlyList<FineTuneStepMetrics> steps, string path, string title)
    {
        var plot = new ScottPlot.Plot();
        var train = plot.Add.Scatter(steps.Select(s => (double)s.Step).ToArray(), steps.Select(s => s.Loss).ToArray());
        train.LegendText = "training loss";
        train.MarkerSize = 0;
        var validated = steps.Where(s => s.ValidationLoss is not null).ToList();
        if (validated.Count > 0)
        {
            var validation = plot.Add.Scatter(validated.Select(s => (double)s.Step).ToArray(), validated.Select(s => s.ValidationLoss!.Value).ToArray());
            validation.LegendText = "validation loss";
            validation.MarkerSize = 6;
        }
        plot.Title(title);
        plot.XLabel("optimizer step");
        plot.YLabel("loss (nats per token)");
        plot.ShowLegend();
        plot.SavePng(path, 900, 500);
    }
}
