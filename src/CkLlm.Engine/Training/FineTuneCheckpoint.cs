using System.Text.Json;
using CkLlm.Engine.Model.Gguf;
using CkLlm.Engine.Training.Native;

namespace CkLlm.Engine.Training;

/// <summary>What a resumed run needs besides the weights: configuration it must match, and progress so far.</summary>
internal sealed record CheckpointState(
    string BaseModel, string Method, int Rank, float Alpha, int ContextLength, int EpochsCompleted, int Steps,
    List<double> TrainLoss, List<double> ValidationLoss, double BestValidationLoss, int EpochsWithoutImprovement);

/// <summary>
/// The resumable checkpoint: trainable tensors (GGUF, F32) and state.json, both written to temp names then renamed,
/// so a run killed while saving keeps the previous checkpoint.
/// </summary>
internal static unsafe class FineTuneCheckpoint
{
    private const string StateFile = "state.json", WeightsFile = "trainable.gguf";

    public static void Save(string dir, CheckpointState state, LlamaGraphModel model, IReadOnlyList<IntPtr> parameters)
    {
        Directory.CreateDirectory(dir);
        var writer = new GgufWriter().Add("general.architecture", model.Hyper.Architecture).Add("general.type", "ckllm-checkpoint");
        foreach (var t in parameters) writer.AddTensor(Ggml.NameOf(t), Ggml.Shape(t)[..Math.Max(1, Dimensions(t))], LoraWeights.Get(t));
        writer.WriteTo(Path.Combine(dir, WeightsFile));
        var json = JsonSerializer.Serialize(state, FineTuneJobProtocol.Json); // named literals: a diverged loss is NaN
        var temp = Path.Combine(dir, StateFile + ".tmp");
        File.WriteAllText(temp, json);
        File.Move(temp, Path.Combine(dir, StateFile), overwrite: true);
    }

    private static int Dimensions(IntPtr t)
    {
        var shape = Ggml.Shape(t);
        int d = 4;
        while (d > 1 && shape[d - 1] == 1) d--;
        return d;
    }

    /// <summary>Loads the weights into <paramref name="parameters"/> and returns the saved state; refuses a checkpoint
    /// made for another model, method, rank or context length.</summary>
    public static CheckpointState Load(string dir, CheckpointState fresh, IReadOnlyList<IntPtr> parameters)
    {
        var statePath = Path.Combine(dir, StateFile);
        var weightsPath = Path.Combine(dir, WeightsFile);
        if (!File.Exists(statePath) || !File.Exists(weightsPath))
            throw new FileNotFoundException($"There is no checkpoint to resume from in '{dir}'.", statePath);
        var state = JsonSerializer.Deserialize<CheckpointState>(File.ReadAllText(statePath), FineTuneJobProtocol.Json)
                    ?? throw new InvalidDataException($"The checkpoint state '{statePath}' is empty.");
        if (state.BaseModel != fresh.BaseModel || state.Method != fresh.Method || state.Rank != fresh.Rank || state.ContextLength != fresh.ContextLength)
            throw new InvalidOperationException($"The checkpoint in '{dir}' was made for {state.Method} (rank {state.Rank}, context {state.ContextLength}) on '{state.BaseModel}'; it cannot resume this run.");
        using var file = GgufModelFile.Open(weightsPath, IntPtr.Zero);
        using var stream = File.OpenRead(weightsPath);
        long dataOffset = (long)Ggml.gguf_get_data_offset(file.Gguf);
        foreach (var t in parameters)
        {
            var name = Ggml.NameOf(t);
            long id = Ggml.gguf_find_tensor(file.Gguf, name);
            if (id < 0) throw new InvalidDataException($"The checkpoint '{weightsPath}' has no tensor '{name}'.");
            var bytes = new byte[Ggml.ggml_nbytes(t)];
            if ((long)Ggml.gguf_get_tensor_size(file.Gguf, id) != bytes.Length) throw new InvalidDataException($"Checkpoint tensor '{name}' has the wrong size.");
            stream.Position = dataOffset + (long)Ggml.gguf_get_tensor_offset(file.Gguf, id);
            stream.ReadExactly(bytes);
            fixed (byte* p = bytes) Ggml.ggml_backend_tensor_set(t, p, 0, (nuint)bytes.Length);
        }
        return state;
    }

    /// <summary>All parameter values, in order (to keep the best weights for early stopping).</summary>
    public static float[] Snapshot(IReadOnlyList<IntPtr> parameters) => parameters.SelectMany(LoraWeights.Get).ToArray();

    public static void Restore(IReadOnlyList<IntPtr> parameters, float[] values)
    {
        long offset = 0;
        foreach (var t in parameters)
        {
            long count = Ggml.ggml_nelements(t);
            LoraWeights.Set(t, values.AsSpan((int)offset, (int)count).ToArray());
            offset += count;
        }
    }
}
