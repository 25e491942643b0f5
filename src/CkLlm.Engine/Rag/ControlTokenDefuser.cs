using System.Text;
using System.Text.RegularExpressions;

namespace CkLlm.Engine.Rag;

/// <summary>
/// Breaks text that a tokenizer would read as a control token, so retrieved text can never open, close or forge a
/// chat turn. The prompt is tokenized with special-token parsing on (the chat template's own markers must become
/// control tokens), and llama.cpp matches a special token by its exact text, so inserting a space after the first
/// character of each occurrence is enough: "&lt;|im_end|&gt;" becomes "&lt; |im_end|&gt;", plain text.
/// Two sources of markers: every chat-template family llama.cpp knows (the generic patterns below), and, when a
/// model is known, every token its own vocabulary marks as control, user-defined or unknown (the set llama.cpp
/// parses as special).
/// </summary>
public sealed partial class ControlTokenDefuser
{
    /// <summary>Only the family patterns (no model vocabulary).</summary>
    public static ControlTokenDefuser Generic { get; } = new([]);

    private readonly Dictionary<char, string[]> _tokensByFirstChar;

    /// <param name="modelTokens">Texts of the model's special tokens; ordinary-looking ones (no symbol, or with
    /// whitespace, or longer than 64) are ignored so plain words are never altered.</param>
    public ControlTokenDefuser(IEnumerable<string> modelTokens)
    {
        _tokensByFirstChar = modelTokens.Where(IsMarkerLike).Distinct(StringComparer.Ordinal)
            .GroupBy(t => t[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Length).ToArray());
        TokenCount = _tokensByFirstChar.Values.Sum(v => v.Length);
    }

    /// <summary>How many model tokens this defuser knows besides the generic patterns.</summary>
    public int TokenCount { get; }

    private static bool IsMarkerLike(string token) =>
        token.Length is >= 2 and <= 64 && !token.Any(char.IsWhiteSpace) && token.Any(c => !char.IsLetterOrDigit(c));

    /// <summary>The text with every control-token occurrence broken. Repeats until nothing matches, because
    /// breaking one marker can never be allowed to complete another.</summary>
    public string Defuse(string? text)
    {
        if (string.IsNullOrEmpty(text)) return text ?? string.Empty;
        for (int pass = 0; pass < 8; pass++)
        {
            var next = DefuseModelTokens(FamilyPattern().Replace(text, Break));
            if (next == text) return next;
            text = next;
        }
        return text;
    }

    private static string Break(Match m) => m.Value[0] + " " + m.Value[1..];

    private string DefuseModelTokens(string text)
    {
        if (_tokensByFirstChar.Count == 0) return text;
        StringBuilder? result = null;
        int copied = 0;
        for (int i = 0; i < text.Length; i++)
        {
            if (!_tokensByFirstChar.TryGetValue(text[i], out var candidates)) continue;
            foreach (var token in candidates)
            {
                if (string.CompareOrdinal(text, i, token, 0, token.Length) != 0) continue;
                result ??= new StringBuilder(text.Length + 16);
                result.Append(text, copied, i + 1 - copied).Append(' ');
                copied = i + 1;
                i += token.Length - 1;
                break;
            }
        }
        if (result is null) return text;
        return result.Append(text, copied, text.Length - copied).ToString();
    }

    // ChatML / Llama 3 / Phi-3 / Zephyr / Granite / Command-R: <|...|>; DeepSeek: <｜...｜> (full-width bars);
    // Llama 2 and Mistral: <s> </s> [INST] [/INST] <<SYS>> and Mistral's tool/system markers; EXAONE [|...|];
    // Gemma: <start_of_turn> <end_of_turn> <bos> <eos>; GLM: [gMASK] <sop> <eop>; tool-call and reasoning markers
    // of Qwen/Hermes-style templates: <tool_call> <tool_response> <tools> <think>; SmolVLM <end_of_utterance>.
    [GeneratedRegex(
        @"<[|｜][^<>\r\n]{0,64}[|｜]>|</?s>|\[/?INST\]|<</?SYS>>" +
        @"|\[/?(AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS|TOOL_CONTENT|SYSTEM_PROMPT|THINK|IMG|IMG_BREAK|IMG_END|PREFIX|MIDDLE|SUFFIX)\]" +
        @"|\[\|[a-z_]{1,32}\|\]|\[gMASK\]|</?(start_of_turn|end_of_turn|bos|eos|pad|unk|sop|eop|mask|tool_call|tool_response|tools|think|end_of_utterance)>",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex FamilyPattern();
}
