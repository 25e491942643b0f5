using System.Runtime.CompilerServices;
using CkLlm.Engine.Inference;
using CkLlm.Engine.Model;
using LLama.Native;

namespace CkLlm.Engine.Rag;

/// <summary>
/// The texts of a model's special tokens: those its vocabulary marks control, user-defined or unknown, which is the
/// set llama.cpp turns into special tokens when it tokenizes with special-token parsing on. Read once per model.
/// </summary>
internal static class ModelControlTokens
{
    private const LLamaTokenAttr Special = LLamaTokenAttr.Control | LLamaTokenAttr.UserDefined | LLamaTokenAttr.Unknown;
    private static readonly ConditionalWeakTable<LoadedModel, IReadOnlyCollection<string>> TextsByModel = new();
    private static readonly ConditionalWeakTable<IChatModel, ControlTokenDefuser> Defusers = new();

    /// <summary>A defuser knowing the model's own special tokens as well as every template family's.</summary>
    public static ControlTokenDefuser DefuserFor(IChatModel model) =>
        Defusers.GetValue(model, m => m.SpecialTokenTexts.Count == 0 ? ControlTokenDefuser.Generic : new ControlTokenDefuser(m.SpecialTokenTexts));

    /// <summary>The special-token texts of a llama.cpp model (cached).</summary>
    public static IReadOnlyCollection<string> Texts(LoadedModel model) => TextsByModel.GetValue(model, Read);

    /// <summary>Token ids the model treats as special (for tests that count them in a tokenized prompt).</summary>
    public static IReadOnlySet<int> SpecialIds(LoadedModel model)
    {
        using var use = model.AcquireUse();
        var vocab = model.Weights.Vocab;
        var ids = new HashSet<int>();
        for (int id = 0; id < vocab.Count; id++)
        {
            if ((((LLamaToken)id).GetAttributes(vocab) & Special) != 0) ids.Add(id);
        }
        return ids;
    }

    private static List<string> Read(LoadedModel model)
    {
        using var use = model.AcquireUse();
        var vocab = model.Weights.Vocab;
        var texts = new List<string>();
        foreach (var id in SpecialIds(model))
        {
            var text = vocab.LLamaTokenToString((LLamaToken)id, isSpecialToken: true);
            if (!string.IsNullOrEmpty(text)) texts.Add(text);
        }
        return texts;
    }
}
