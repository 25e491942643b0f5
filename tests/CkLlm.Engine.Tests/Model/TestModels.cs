using CkLlm.Engine.Model.Generation;

namespace CkLlm.Engine.Tests.Model;

/// <summary>Generated Tiny models shared by the model and inference tests (written once per test run).</summary>
public sealed class TestModels : IDisposable
{
    /// <summary>A template llama.cpp recognises (Gemma family: detected by its turn markers).</summary>
    public const string GemmaTemplate =
        "{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + message['role'] + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";

    public TestModels()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("ckllm-engine-tests-").FullName;
        Plain = Path.Combine(Directory, "tiny.gguf");
        ModelGenerator.Generate(Plain, new ModelGenerationOptions { Preset = ModelPreset.Tiny, Seed = 1 });
        WithTemplate = Path.Combine(Directory, "tiny-chat.gguf");
        ModelGenerator.Generate(WithTemplate, new ModelGenerationOptions { Preset = ModelPreset.Tiny, Seed = 1, ChatTemplate = GemmaTemplate });
    }

    public string Directory { get; }
    public string Plain { get; }
    public string WithTemplate { get; }

    public void Dispose()
    {
        try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { }
    }
}
