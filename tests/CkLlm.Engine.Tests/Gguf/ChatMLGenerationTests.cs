using CkLlm.Engine.Model.Generation;
using CkLlm.Engine.Model.Gguf;
using LLama;
using LLama.Common;

namespace CkLlm.Engine.Tests.Gguf;

public class ChatMLGenerationTests
{
    [Fact]
    public void ChatMLModelCarriesTemplateAndControlTokensThatLlamaCppTreatsAsSingleTokens()
    {
        var path = Path.Combine(Path.GetTempPath(), $"ckllm-chatml-{Guid.NewGuid():N}.gguf");
        try
        {
            ModelGenerator.Generate(path, new ModelGenerationOptions { Seed = 3 }.WithChatML());
            var summary = GgufValidator.Validate(path);
            Assert.Equal(ChatTemplates.ChatML, summary.ChatTemplate);
            Assert.Equal(ModelPreset.Tiny.VocabularySize, summary.VocabularySize);

            var file = GgufReader.Read(path);
            var tokens = file.GetArray<string>("tokenizer.ggml.tokens");
            int imEnd = Array.IndexOf(tokens, "<|im_end|>");
            Assert.Equal(259, Array.IndexOf(tokens, "<|im_start|>")); // right after <unk> <s> </s> and 256 bytes
            Assert.Equal((uint)imEnd, file.GetUInt32("tokenizer.ggml.eot_token_id"));
            Assert.Equal(SentencePieceVocabulary.TypeControl, file.GetArray<int>("tokenizer.ggml.token_type")[imEnd]);

            using var weights = LLamaWeights.LoadFromFile(new ModelParams(path) { ContextSize = 256 });
            using var context = weights.CreateContext(new ModelParams(path) { ContextSize = 256 });
            var ids = context.Tokenize("<|im_start|>user", addBos: false, special: true);
            Assert.Equal(259, (int)ids[0]);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void WithoutControlTokensTheLayoutIsUnchanged()
    {
        var plain = SentencePieceVocabulary.Build("", 512);
        var withNone = SentencePieceVocabulary.Build("", 512, []);
        Assert.Equal(plain.Tokens, withNone.Tokens);
        Assert.Equal("<0xFF>", plain.Tokens[258]);
        Assert.Throws<ArgumentException>(() => SentencePieceVocabulary.Build("", 512, ["<s>"]));
    }
}

public class VocabularyLearningTests
{
    [Fact]
    public void FrequentCorpusWordsBecomePiecesDeterministically()
    {
        var corpus = string.Concat(Enumerable.Repeat("zyxwv quartzite zyxwv quartzite ", 50)) + "rare";
        var a = SentencePieceVocabulary.Build(corpus, 400);
        var b = SentencePieceVocabulary.Build(corpus, 400);
        Assert.Equal(a.Tokens, b.Tokens);
        Assert.Equal(400, a.Count);
        Assert.Contains("\u2581quartzite", a.Tokens);
        Assert.Contains("\u2581zyxwv", a.Tokens);
        // Every learned piece is reachable: its characters are all in the vocabulary too.
        Assert.All("quartzite", c => Assert.Contains(c.ToString(), a.Tokens));
        Assert.DoesNotContain("\u2581quartzite", SentencePieceVocabulary.Build("", 400).Tokens);
    }
}

public class GenerationProgressTests
{
    private sealed class Recorder : IProgress<double>
    {
        public List<double> Values { get; } = new();
        public void Report(double value) => Values.Add(value);
    }

    [Fact]
    public void ProgressRisesToOneAndCancellationLeavesNoFile()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"ckllm-progress-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            var recorder = new Recorder();
            ModelGenerator.Generate(Path.Combine(dir, "ok.gguf"), new ModelGenerationOptions(), recorder);
            Assert.Equal(1.0, recorder.Values[^1]);
            Assert.Equal(recorder.Values.OrderBy(v => v), recorder.Values);

            using var cancelled = new CancellationTokenSource();
            cancelled.Cancel();
            var target = Path.Combine(dir, "cancelled.gguf");
            Assert.ThrowsAny<OperationCanceledException>(() => ModelGenerator.Generate(target, new ModelGenerationOptions(), null, cancelled.Token));
            Assert.Equal(["ok.gguf"], Directory.GetFiles(dir).Select(Path.GetFileName));
        }
        finally { Directory.Delete(dir, true); }
    }
}
