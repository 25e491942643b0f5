using System.Text;
using CkLlm.Engine.Model;
using LLama;

namespace CkLlm.Engine.Inference;

/// <summary>
/// Turns a chat into the prompt text a model expects. A model whose GGUF carries <c>tokenizer.chat_template</c> gets
/// that template applied by llama.cpp (<c>llama_chat_apply_template</c>, through LLamaSharp's LLamaTemplate), which
/// recognises the common template families (ChatML, Llama 2/3, Mistral, Zephyr, Gemma, Phi, ...).
/// A model without a template, or with one llama.cpp does not recognise, gets the FALLBACK: ChatML-like plain text
/// <code>
/// &lt;|im_start|&gt;system\n{system}&lt;|im_end|&gt;\n
/// &lt;|im_start|&gt;user\n{content}&lt;|im_end|&gt;\n
/// &lt;|im_start|&gt;assistant\n
/// </code>
/// and "&lt;|im_end|&gt;" is added as a stop string so the answer ends at the end of its turn.
/// </summary>
public static class ChatFormatter
{
    public const string FallbackEndOfTurn = "<|im_end|>";

    /// <summary>Returns the prompt text, how it was made ("none", "template", "fallback") and stop strings it implies.</summary>
    public static FormattedPrompt Format(LoadedModel model, CompletionRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!request.IsChat) return new FormattedPrompt(request.Prompt ?? string.Empty, "none", []);

        var messages = Messages(request);
        if (model.HasChatTemplate && TryApplyModelTemplate(model, messages, out var templated))
            return new FormattedPrompt(templated, "template", []);
        return new FormattedPrompt(ApplyFallback(messages), "fallback", [FallbackEndOfTurn]);
    }

    /// <summary>A chat request's messages in order: System first, then Messages, then Prompt as a user message.</summary>
    /// <exception cref="ArgumentException">A message without a role or content.</exception>
    public static List<ChatMessage> Messages(CompletionRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var messages = new List<ChatMessage>();
        if (!string.IsNullOrEmpty(request.System)) messages.Add(new ChatMessage("system", request.System));
        if (request.Messages is { Count: > 0 }) messages.AddRange(request.Messages);
        if (!string.IsNullOrEmpty(request.Prompt)) messages.Add(new ChatMessage("user", request.Prompt));
        foreach (var message in messages)
        {
            if (string.IsNullOrWhiteSpace(message.Role)) throw new ArgumentException("Every chat message needs a Role (system, user or assistant).", nameof(request));
            if (message.Content is null) throw new ArgumentException($"The '{message.Role}' message has no Content.", nameof(request));
        }
        return messages;
    }

    /// <summary>The fallback format (see the class summary).</summary>
    public static string ApplyFallback(IEnumerable<ChatMessage> messages)
    {
        var text = new StringBuilder();
        foreach (var message in messages)
            text.Append("<|im_start|>").Append(message.Role.ToLowerInvariant()).Append('\n').Append(message.Content).Append(FallbackEndOfTurn).Append('\n');
        return text.Append("<|im_start|>assistant\n").ToString();
    }

    private static bool TryApplyModelTemplate(LoadedModel model, List<ChatMessage> messages, out string prompt)
    {
        prompt = string.Empty;
        using var use = model.AcquireUse();
        try
        {
            var template = new LLamaTemplate(model.Weights) { AddAssistant = true };
            foreach (var message in messages) template.Add(message.Role.ToLowerInvariant(), message.Content);
            prompt = Encoding.UTF8.GetString(template.Apply());
            return prompt.Length > 0;
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or LLama.Exceptions.RuntimeError)
        {
            // llama.cpp does not recognise this template family: use the documented fallback.
            return false;
        }
    }
}
