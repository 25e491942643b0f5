// Usage:
//   CkLlm.Bench quantize <in.gguf> <out.gguf> <threads>        -> writes a Q8_0 copy with llama_model_quantize
//   CkLlm.Bench compare <model.gguf> <threads> <promptTokens> <generateTokens> <repetitions>
// compare prints one JSON line per (implementation, repetition) and a summary line; both implementations are timed
// the same way from outside: prompt tok/s = prompt tokens / time to the first generated token (includes context
// creation), generation tok/s = tokens after the first / time from receiving the first token to receiving the last.
// The clock stops at the last token on both sides, so both are charged the same decodes (one per token after the
// first): LLamaSharp's executor decodes once more after its last token before its enumeration ends, and timing to the
// end of the enumeration would charge it one decode CkLlm does not do. Both run on thread-pool threads (LLamaSharp's
// executor decodes there; on this machine the main thread measured ~8% slower for either implementation).
using System.Diagnostics;
using System.Text.Json;
using CkLlm.Engine.Inference;
using CkLlm.Engine.Model;
using LLama;
using LLama.Common;
using LLama.Native;
using LLama.Sampling;

NativeBackend.EnsureInitialized();
switch (args.FirstOrDefault())
{
    case "quantize":
    {
        var ok = LLamaQuantizer.Quantize(args[1], args[2], LLamaFtype.MOSTLY_Q8_0, int.Parse(args[3]));
        if (!ok) { Console.Error.WriteLine("quantization failed"); return 1; }
        Console.WriteLine(JsonSerializer.Serialize(new { quantized = args[2], bytes = new FileInfo(args[2]).Length }));
        return 0;
    }
    case "compare":
        return await Compare(args[1], int.Parse(args[2]), int.Parse(args[3]), int.Parse(args[4]), int.Parse(args[5]));
    default:
        Console.Error.WriteLine("usage: quantize <in> <out> <threads> | compare <model> <threads> <promptTokens> <generateTokens> <repetitions>");
        return 2;
}

static async Task<int> Compare(string path, int threads, int promptTokens, int generateTokens, int repetitions)
{
    var contextSize = promptTokens + generateTokens + 64;
    using var model = LoadedModel.Load(path, new ModelLoadOptions { ContextSize = contextSize, Threads = threads });
    var prompt = BuildPrompt(model, promptTokens);
    // The same prompt for Bench.ps1's Invoke-CkCompletion run.
    File.WriteAllText(path + ".prompt.txt", prompt);
    var actualPromptTokens = model.CountTokens(prompt, addBos: true);

    // The raw side: LLamaSharp's own StatelessExecutor on its own weights, same parameters.
    var parameters = new ModelParams(path) { ContextSize = (uint)contextSize, Threads = threads, BatchThreads = threads, LoadMode = LLamaLoadMode.MemoryMap };
    using var weights = LLamaWeights.LoadFromFile(parameters);
    var executor = new StatelessExecutor(weights, parameters);

    var results = new List<Measurement>();
    // One warm-up each (page cache, thread pools), then interleave so drift hits both alike.
    await RunRaw(executor, prompt, generateTokens, actualPromptTokens);
    RunCkLlm(model, prompt, generateTokens, actualPromptTokens);
    for (var i = 0; i < repetitions; i++)
    {
        foreach (var implementation in i % 2 == 0 ? new[] { "raw", "ckllm" } : ["ckllm", "raw"])
        {
            var m = implementation == "raw"
                ? await RunRaw(executor, prompt, generateTokens, actualPromptTokens)
                : await Task.Run(() => RunCkLlm(model, prompt, generateTokens, actualPromptTokens));
            results.Add(m);
            Console.WriteLine(JsonSerializer.Serialize(m));
        }
    }
    var summary = new
    {
        summary = true,
        model = Path.GetFileName(path),
        threads,
        promptTokens = actualPromptTokens,
        generateTokens,
        repetitions,
        rawPrompt = Median(results, "raw", m => m.PromptTokensPerSecond),
        ckllmPrompt = Median(results, "ckllm", m => m.PromptTokensPerSecond),
        rawGeneration = Median(results, "raw", m => m.GenerationTokensPerSecond),
        ckllmGeneration = Median(results, "ckllm", m => m.GenerationTokensPerSecond),
    };
    Console.WriteLine(JsonSerializer.Serialize(summary));
    return 0;
}

static double Median(List<Measurement> results, string implementation, Func<Measurement, double> value)
{
    var values = results.Where(r => r.Implementation == implementation).Select(value).Order().ToArray();
    return values.Length == 0 ? 0 : values.Length % 2 == 1 ? values[values.Length / 2] : (values[values.Length / 2 - 1] + values[values.Length / 2]) / 2;
}

static string BuildPrompt(LoadedModel model, int tokens)
{
    var words = "the model reads a long prompt about rivers mountains cities and the history of careful measurement ".Split(' ', StringSplitOptions.RemoveEmptyEntries);
    var text = new System.Text.StringBuilder();
    for (var i = 0; model.CountTokens(text.ToString(), addBos: true) < tokens; i++) text.Append(words[i % words.Length]).Append(' ');
    return text.ToString().TrimEnd();
}

static async Task<Measurement> RunRaw(StatelessExecutor executor, string prompt, int generateTokens, int promptTokens)
{
    var inference = new InferenceParams { MaxTokens = generateTokens, SamplingPipeline = new DefaultSamplingPipeline { Temperature = 0, Seed = 1 } };
    var clock = Stopwatch.StartNew();
    double first = 0, last = 0;
    var count = 0;
    await foreach (var _ in executor.InferAsync(prompt, inference))
    {
        last = clock.Elapsed.TotalSeconds;
        if (count++ == 0) first = last;
    }
    return Measurement.From("raw", promptTokens, count, first, last);
}

// Through the model seam (IChatModel), as Invoke-CkCompletion runs it. A text chunk may carry more than one token
// (a multi-byte character), so the token counts come from the chunks.
static Measurement RunCkLlm(IChatModel model, string prompt, int generateTokens, int promptTokens)
{
    var request = new CompletionRequest { Prompt = prompt, MaxTokens = generateTokens, Temperature = 0, Seed = 1, CachePrompt = false };
    var clock = Stopwatch.StartNew();
    double first = 0, last = 0;
    int firstTokens = 0, lastTokens = 0;
    foreach (var chunk in model.Stream(request))
    {
        if (chunk.IsFinal) break;
        last = clock.Elapsed.TotalSeconds;
        lastTokens = chunk.CompletionTokens;
        if (firstTokens == 0) { first = last; firstTokens = lastTokens; }
    }
    return Measurement.From("ckllm", promptTokens, lastTokens - firstTokens + 1, first, last);
}

internal sealed record Measurement(string Implementation, int PromptTokens, int GeneratedTokens, double PromptTokensPerSecond,
    double GenerationTokensPerSecond, double Seconds)
{
    /// <param name="generated">Tokens received from the first to the last, both included.</param>
    public static Measurement From(string implementation, int promptTokens, int generated, double firstTokenSeconds, double lastTokenSeconds) =>
        new(implementation, promptTokens, generated, promptTokens / firstTokenSeconds,
            generated > 1 ? (generated - 1) / (lastTokenSeconds - firstTokenSeconds) : 0, lastTokenSeconds);
}
