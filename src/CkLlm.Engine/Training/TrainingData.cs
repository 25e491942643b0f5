using LLama;
using LLama.Common;

namespace CkLlm.Engine.Training;

/// <summary>One training window: Length + 1 tokens; <see cref="Scored"/>[i] says whether token i + 1 is predicted.</summary>
internal sealed record TrainingWindow(int[] Tokens, bool[] Scored)
{
    public int Length => Tokens.Length - 1;
    public int ScoredCount => Scored.Count(s => s);
}

/// <summary>Turns documents and prompt/response pairs into fixed-length token windows with llama.cpp's tokenizer.</summary>
internal static class TrainingData
{
    /// <summary>Sentence-start windows a run adds at most (evenly spread over the documents): enough for a
    /// handbook, bounded for a corpus.</summary>
    public const int MaxSentenceWindows = 4096;

    private static readonly System.Text.RegularExpressions.Regex SentenceStart =
        new(@"(?<=[.!?])\s+(?=\S)|\n\s*\n\s*(?=\S)", System.Text.RegularExpressions.RegexOptions.Compiled);

    /// <param name="sentenceWindows">Also add, for every sentence of the documents, a window that starts with BOS at
    /// that sentence. Stream windows see most sentences only after other text; a user who asks starts fresh, so
    /// these teach the model to continue a sentence from its own opening words.</param>
    public static List<TrainingWindow> Build(string modelPath, IReadOnlyList<string> texts, IReadOnlyList<TrainingPair> pairs, int contextLength, bool sentenceWindows = false)
    {
        if (contextLength < 2) throw new ArgumentOutOfRangeException(nameof(contextLength), contextLength, "The context length must be at least 2.");
        var p = new ModelParams(modelPath) { ContextSize = 256, GpuLayerCount = 0, VocabOnly = true };
        using var weights = LLamaWeights.LoadFromFile(p);
        var handle = weights.NativeHandle;
        int[] Tokenize(string s, bool bos) => handle.Tokenize(s, bos, true, System.Text.Encoding.UTF8).Select(t => (int)t).ToArray();

        // Documents form one stream (each starting with BOS), cut into windows that overlap by one token so every
        // token after the first is predicted exactly once.
        var stream = new List<int>();
        foreach (var text in texts.Where(t => !string.IsNullOrWhiteSpace(t))) stream.AddRange(Tokenize(text, true));
        var windows = new List<TrainingWindow>();
        for (int start = 0; start + 1 < stream.Count; start += contextLength)
        {
            var tokens = stream.Skip(start).Take(contextLength + 1).ToArray();
            windows.Add(new TrainingWindow(tokens, Enumerable.Repeat(true, tokens.Length - 1).ToArray()));
        }

        if (sentenceWindows) windows.AddRange(SentenceWindows(texts, contextLength, Tokenize));

        // Pairs: the chat template (when the model has one) wraps the prompt; only response tokens are scored.
        var eos = weights.Vocab.EOS;
        foreach (var pair in pairs)
        {
            string promptText = pair.Prompt;
            try
            {
                var template = new LLamaTemplate(weights) { AddAssistant = true };
                template.Add("user", pair.Prompt);
                promptText = System.Text.Encoding.UTF8.GetString(template.Apply());
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                promptText = pair.Prompt + "\n"; // no usable template: plain prompt, newline, response
            }
            var prompt = Tokenize(promptText, true);
            var response = Tokenize(pair.Response, false).ToList();
            if (eos is not null) response.Add((int)eos.Value);
            var tokens = prompt.Concat(response).Take(contextLength + 1).ToArray();
            var scored = new bool[tokens.Length - 1];
            for (int i = 0; i < scored.Length; i++) scored[i] = i + 1 >= prompt.Length;
            if (scored.Any(s => s)) windows.Add(new TrainingWindow(tokens, scored));
        }
        if (windows.Count == 0)
        {
            var reasons = new List<string>();
            if (texts.Any(t => !string.IsNullOrWhiteSpace(t))) reasons.Add($"the documents tokenize to {stream.Count} token(s), at least 2 are needed for one window");
            if (pairs.Count > 0) reasons.Add($"none of the {pairs.Count} prompt/response record(s) leaves a response token within the context length {contextLength} (shorten the prompts or raise -ContextLength)");
            throw new ArgumentException($"The training data is too small to form one training window: {(reasons.Count > 0 ? string.Join("; ", reasons) : "it is empty")}.");
        }
        return windows;
    }

    private static IEnumerable<TrainingWindow> SentenceWindows(IReadOnlyList<string> texts, int contextLength, Func<string, bool, int[]> tokenize)
    {
        // (text, character offset) of every sentence start except a document's first (its stream window starts there).
        var starts = texts.Where(t => !string.IsNullOrWhiteSpace(t))
            .SelectMany(t => SentenceStart.Matches(t).Select(m => (Text: t, Offset: m.Index + m.Length)))
            .Where(s => s.Offset < s.Text.Length)
            .ToList();
        double stride = Math.Max(1.0, starts.Count / (double)MaxSentenceWindows);
        // Enough characters for a full window in any tokenizer (bytes at worst would need more; then the window is short).
        int chars = Math.Max(64, contextLength * 8);
        for (double i = 0; i < starts.Count; i += stride)
        {
            var (text, offset) = starts[(int)i];
            var tokens = tokenize(text.Substring(offset, Math.Min(chars, text.Length - offset)), true);
            if (tokens.Length < 2) continue;
            tokens = tokens.Take(contextLength + 1).ToArray();
            yield return new TrainingWindow(tokens, Enumerable.Repeat(true, tokens.Length - 1).ToArray());
        }
    }
}
