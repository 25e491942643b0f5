using CkLlm.Engine.Model.Generation;
using CkLlm.Engine.Training;
using LLama;
using LLama.Common;
using Xunit.Abstractions;

namespace CkLlm.Engine.Tests.Training;

/// <summary>
/// Prompt/response records go through the model's chat template and only the response is scored: the windows say
/// so token by token, and after training llama.cpp (not the trainer) finds the responses far likelier given their
/// prompts while the prompts themselves were not learned.
/// </summary>
[Collection("Training")]
public class PromptResponseTrainingTests(TrainingFixture fixture, ITestOutputHelper output)
{
    private static readonly TrainingPair[] Pairs =
    [
        new("Who built the lighthouse of Varnholm?", "Edda Quill, in 1743."),
        new("What does Tobin Marsh bake?", "The storm loaf, every Thursday."),
        new("How long is the gravel path?", "One thousand two hundred steps."),
        new("Who counts the goats?", "Mira Quill, on a slate board."),
    ];

    private string ChatModel()
    {
        var path = fixture.NewPath("chatml.gguf");
        ModelGenerator.Generate(path, new ModelGenerationOptions { Preset = ModelPreset.Tiny, Seed = 5, Corpus = TrainingFixture.Facts }.WithChatML());
        return path;
    }

    private static int[] Tokenize(string model, string text, bool bos, bool special)
    {
        using var weights = LLamaWeights.LoadFromFile(new ModelParams(model) { ContextSize = 256, GpuLayerCount = 0, VocabOnly = true });
        return weights.NativeHandle.Tokenize(text, bos, special, System.Text.Encoding.UTF8).Select(t => (int)t).ToArray();
    }

    [Fact]
    public void OnlyResponseTokensAreScoredAndThePromptGoesThroughTheChatTemplate()
    {
        var model = ChatModel();
        int imStart = Assert.Single(Tokenize(model, "<|im_start|>", false, true));
        var windows = TrainingData.Build(model, [], Pairs, 128);
        Assert.Equal(Pairs.Length, windows.Count);
        for (int p = 0; p < Pairs.Length; p++)
        {
            var w = windows[p];
            var response = Tokenize(model, Pairs[p].Response, false, true);
            int promptLength = w.Tokens.Length - response.Length - 1; // response + EOS end the window
            // Scored: exactly the positions that predict the response and the EOS after it; nothing inside the prompt.
            Assert.Equal(response.Length + 1, w.ScoredCount);
            for (int i = 0; i < w.Length; i++) Assert.Equal(i + 1 >= promptLength, w.Scored[i]);
            Assert.Equal(response, w.Tokens[promptLength..^1]);
            // The prompt is the chat template's rendering (ChatML control token), not the bare question.
            Assert.Contains(imStart, w.Tokens[..promptLength]);
            Assert.True(promptLength > Tokenize(model, Pairs[p].Prompt, true, false).Length + 2);
        }
        // A window shorter than prompt + response keeps the prompt and as much response as fits.
        var cut = TrainingData.Build(model, [], [Pairs[0]], windows[0].Length - 2).Single();
        Assert.Equal(windows[0].ScoredCount - 2, cut.ScoredCount);
    }

    [Fact]
    public void TrainingOnRecordsTeachesTheResponsesNotThePrompts()
    {
        var model = ChatModel();
        var tuned = fixture.NewPath("pairs-full.gguf");
        var result = FineTuner.Run(new FineTuneOptions
        {
            ModelPath = model,
            OutputPath = tuned,
            Pairs = Pairs,
            Method = FineTuneMethod.Full,
            Epochs = 30,
            ContextLength = 64,
            BatchSize = 1,
            LearningRate = 3e-3f,
            Schedule = LearningRateSchedule.Constant,
            MeasurePerplexity = false,
        });
        output.WriteLine($"loss {string.Join(" ", result.TrainLoss.Select(l => l.ToString("F2")))}; {result.Duration.TotalSeconds:F1} s");

        // Mean NLL computed by llama.cpp over the response positions and over the prompt positions, base vs trained.
        var windows = TrainingData.Build(model, [], Pairs, 64);
        (double Response, double Prompt) Nll(string scorer)
        {
            double response = 0, prompt = 0;
            int responseCount = 0, promptCount = 0;
            foreach (var w in windows)
            {
                var logits = LlamaCppEvaluator.Logits(scorer, null, w.Tokens);
                int vocab = logits.Length / w.Tokens.Length;
                for (int i = 0; i < w.Length; i++)
                {
                    var row = logits.AsSpan(i * vocab, vocab);
                    double nll = LlamaCppEvaluator.LogSumExp(row) - row[w.Tokens[i + 1]];
                    if (w.Scored[i]) { response += nll; responseCount++; }
                    else { prompt += nll; promptCount++; }
                }
            }
            return (response / responseCount, prompt / promptCount);
        }
        var before = Nll(model);
        var after = Nll(tuned);
        output.WriteLine($"response NLL {before.Response:F3} -> {after.Response:F3}; prompt NLL {before.Prompt:F3} -> {after.Prompt:F3}");
        Assert.True(after.Response * 5 <= before.Response, $"response NLL {before.Response:F3} -> {after.Response:F3}");
        // The prompt tokens were never a target: they did not become much likelier (a trained prompt would drop like the response).
        Assert.True(after.Prompt > before.Prompt * 0.7, $"prompt NLL {before.Prompt:F3} -> {after.Prompt:F3}");

        // Greedy decoding by llama.cpp from each templated prompt now produces its response.
        int recalled = 0, recalledByBase = 0;
        foreach (var (w, pair) in windows.Zip(Pairs))
        {
            int promptLength = w.Scored.TakeWhile(s => !s).Count() + 1;
            var prompt = w.Tokens[..promptLength];
            var expected = w.Tokens[promptLength..^1];
            if (Greedy(tuned, prompt, expected.Length).SequenceEqual(expected)) recalled++;
            if (Greedy(model, prompt, expected.Length).SequenceEqual(expected)) recalledByBase++;
        }
        output.WriteLine($"responses recalled: {recalled}/{Pairs.Length} after training, {recalledByBase} by the base model");
        Assert.True(recalled >= 3, $"only {recalled} of {Pairs.Length} responses recalled");
        Assert.Equal(0, recalledByBase);
    }

    private static int[] Greedy(string model, int[] prompt, int count)
    {
        var tokens = prompt.ToList();
        for (int n = 0; n < count; n++)
        {
            var logits = LlamaCppEvaluator.Logits(model, null, tokens.ToArray());
            int vocab = logits.Length / tokens.Count;
            var last = logits.AsSpan((tokens.Count - 1) * vocab, vocab);
            int best = 0;
            for (int i = 1; i < vocab; i++) if (last[i] > last[best]) best = i;
            tokens.Add(best);
        }
        return tokens.Skip(prompt.Length).ToArray();
    }
}
