using System.Management.Automation;
using System.Text.Json;
using CkLlm.Engine.Inference;
using CompletionResult = CkLlm.Engine.Inference.CompletionResult;

namespace CkLlm.Commands;

/// <summary>Completes a prompt or a chat with a loaded model; optionally streams tokens to the host.</summary>
[Cmdlet(VerbsLifecycle.Invoke, "CkCompletion")]
[OutputType(typeof(CompletionResult))]
public sealed class InvokeCkCompletionCommand : GenerationCommandBase
{
    private bool _ranOnce;

    [Parameter(Position = 0, ValueFromPipeline = true)]
    [AllowEmptyString]
    public string? Prompt { get; set; }

    /// <summary>Chat messages: hashtables or objects with Role and Content.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public object[]? Messages { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Grammar { get; set; }

    /// <summary>A JSON schema as a string or a hashtable.</summary>
    [Parameter]
    [ValidateNotNull]
    public object? JsonSchema { get; set; }

    [Parameter]
    public SwitchParameter AsObject { get; set; }

    /// <summary>Evaluate the whole prompt in a fresh context instead of reusing a recent call's matching prefix.</summary>
    [Parameter]
    public SwitchParameter NoCache { get; set; }

    protected override void ProcessRecord()
    {
        _ranOnce = true;
        if (Prompt is null && Messages is null && System is null)
        {
            WriteInputError(new ArgumentException("Give a -Prompt (or pipe prompts in) or -Messages."),
                "NothingToComplete", ErrorCategory.InvalidArgument, null);
            return;
        }
        Run();
    }

    protected override void EndProcessing()
    {
        // A chat given only as -Messages with nothing piped in still runs once.
        if (!_ranOnce && Messages is not null) Run();
    }

    private void Run()
    {
        var model = ResolveModel(Model);
        if (model is null) return;
        CompletionRequest? request = null;
        if (!TryEngine(() => request = BuildRequest(), Prompt)) return;

        CompletionResult? result = null;
        var completed = TryEngine(() =>
        {
            try
            {
                foreach (var chunk in model.Stream(request!, Cancellation))
                {
                    if (chunk.Result is not null) { result = chunk.Result; break; }
                    if (Stream) WriteStreamedText(chunk.Text);
                    this.WriteNativeLog();
                }
            }
            finally { this.WriteNativeLog(); }
        }, Prompt);
        if (!completed || result is null) return;

        if (Stream) EndStreamedText();
        WriteVerbose($"{result.FinishReason}: {result.PromptTokens} prompt tokens ({result.CachedPromptTokens} from the prompt cache, the rest at {result.PromptTokensPerSecond:N0}/s), {result.CompletionTokens} generated ({result.TokensPerSecond:N1}/s).");
        if (!AsObject)
        {
            WriteObject(result);
            return;
        }
        object? parsed;
        try { parsed = JsonPSObject.Parse(result.Text); }
        catch (JsonException e)
        {
            var reason = result.FinishReason == FinishReason.Length ? " The output hit -MaxTokens; raise it." : "";
            WriteInputError(new InvalidDataException($"The completion is not valid JSON ({e.Message}).{reason}", e),
                "CompletionNotJson", ErrorCategory.InvalidResult, result);
            return;
        }
        WriteObject(parsed, enumerateCollection: false);
    }

    private CompletionRequest BuildRequest() => new(Sampling())
    {
        Prompt = Prompt,
        Messages = Messages?.Select(ToMessage).ToArray(),
        System = System,
        Grammar = Grammar,
        JsonSchema = JsonSchema is null ? null : JsonPSObject.ToJsonText(JsonSchema),
        CachePrompt = !NoCache,
    };

    private static ChatMessage ToMessage(object? item)
    {
        var role = ReadProperty(item, "Role");
        var content = ReadProperty(item, "Content");
        if (string.IsNullOrWhiteSpace(role) || content is null)
            throw new ArgumentException("Each message needs a Role (system, user, assistant) and a Content, e.g. @{ Role = 'user'; Content = 'Hi' }.");
        return new ChatMessage(role, content);
    }
}
