using System.Globalization;
using CkLlm.Engine.Model.Generation;
using CkLlm.Engine.Training;
using CkLlm.Engine.Training.Native;
using Xunit.Abstractions;

namespace CkLlm.Engine.Tests.Training;

[Collection("Training")]
public unsafe class HugePagesTests(TrainingFixture fixture, ITestOutputHelper output)
{
    /// <summary>Wide enough that every buffer of a Full step holds whole 2 MB pages.</summary>
    private static readonly ModelPreset Wide = new("Wide", 256, 1, 4, 2, 1024, 2048, 256);

    [Fact]
    public void EveryLargeBufferOfAFullStepIsAdvisedForHugePages()
    {
        if (!Directory.Exists("/sys/kernel/mm/transparent_hugepage")) return; // a kernel without THP: nothing to advise
        var path = fixture.NewPath("wide.gguf");
        ModelGenerator.Generate(path, new ModelGenerationOptions { Preset = Wide, Seed = 4, Corpus = TrainingFixture.Facts });
        var windows = TrainingData.Build(path, [TrainingFixture.Facts + " " + TrainingFixture.Facts], [], 64);
        using var model = new LlamaGraphModel(path, 1);
        var parameters = FineTuner.TrainableParameters(model, null);
        using var steps = new ReusedGraphSteps(model, null, parameters);
        steps.Train([windows.Take(4).ToList()], 1e-3f, 0);
        var buffers = new Dictionary<string, IntPtr>
        {
            ["weights"] = model.Graph.TokenEmbedding,
            ["gradient accumulators"] = steps.Accumulators.Values.First(),
            ["transposed weights"] = steps.TransposedCopies.Values.First(),
            ["compute buffer"] = steps.ForwardNodes().First(n => ((GgmlTensor*)n)->Op != 0 && ((GgmlTensor*)n)->ViewSrc == IntPtr.Zero),
        };
        foreach (var (what, tensor) in buffers)
        {
            var buffer = ((GgmlTensor*)tensor)->Buffer;
            long start = (long)Ggml.ggml_backend_buffer_get_base(buffer), size = (long)Ggml.ggml_backend_buffer_get_size(buffer);
            long page = (start + (2L << 20) - 1) & ~((2L << 20) - 1);
            output.WriteLine($"{what}: {size >> 10} KB at {start:x}");
            Assert.True(page + (2L << 20) <= start + size, $"the {what} ({size >> 10} KB) holds no whole 2 MB page: the test model is too small");
            Assert.Contains("hg", MappingFlags(page));
        }
    }

    /// <summary>The VmFlags of the mapping holding <paramref name="address"/> in /proc/self/smaps ("hg": MADV_HUGEPAGE).</summary>
    private static string[] MappingFlags(long address)
    {
        bool inside = false;
        foreach (var line in File.ReadLines("/proc/self/smaps"))
        {
            var range = line.Split(' ')[0].Split('-');
            if (range.Length == 2 && long.TryParse(range[0], NumberStyles.HexNumber, null, out var from) && long.TryParse(range[1], NumberStyles.HexNumber, null, out var to))
                inside = address >= from && address < to;
            else if (inside && line.StartsWith("VmFlags:", StringComparison.Ordinal))
                return line[8..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        }
        throw new InvalidOperationException($"No mapping holds {address:x}.");
    }
}
