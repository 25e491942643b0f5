using CkLlm.Engine.Model.Gguf;

namespace CkLlm.Engine.Model.Generation;

/// <summary>A vocabulary a generated model embeds: its tokens and the tokenizer metadata llama.cpp reads.</summary>
public interface IGeneratedVocabulary
{
    IReadOnlyList<string> Tokens { get; }

    int Count { get; }

    /// <summary>The id of <paramref name="token"/>; throws ArgumentException when it is not in the vocabulary.</summary>
    int IdOf(string token)
    {
        for (int id = 0; id < Tokens.Count; id++)
            if (Tokens[id] == token) return id;
        throw new ArgumentException($"Token '{token}' is not in the vocabulary.", nameof(token));
    }

    /// <summary>Adds tokenizer.ggml.model and the token tables (special-token ids are the model's business).</summary>
    void AddTo(GgufWriter writer);
}
