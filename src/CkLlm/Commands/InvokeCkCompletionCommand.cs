using System.Collections;
using System.Management.Automation;
using System.Text.Json;
using CkLlm.Engine.Inference;
using CkLlm.Engine.Model;
using CompletionResult = CkLlm.Engine.Inference.CompletionResult;

namespace CkLlm.Commands;

/// <summary>Completes a prompt or a chat with a loaded model; optionally streams tokens to the host.</summary>
[Cmdlet(VerbsLifecycle.Invoke, "CkCompletion")]
[OutputType(typeof(CompletionResult))]
public sealed class InvokeCkCompletionCommand : PSCmdlet
{
    private readonly CancellationTokenSource _cancellation = new();
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
    public string? System { get; set; }

    /// <summary>A model name or a model object from Import-CkModel/Get-CkModel; default: the current model.</summary>
    [Parameter]
    [ValidateNotNull]
    public object? Model { get; set; }

    [Parameter]
    [ValidateRange(0, 1 << 20)]
    public int MaxTokens { get; set; } = 256;

    [Parameter]
    [ValidateRange(0.0, 100.0)]
    public float Temperature { get; set; } = 0.8f;

    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int TopK { get; set; } = 40;

    [Parameter]
    [ValidateRange(0.0, 1.0)]
    public float TopP { get; set; } = 0.95f;

    [Parameter]
    [ValidateRange(0.0, 1.0)]
    public float MinP { get; set; } = 0.05f;

    [Parameter]
    [ValidateRange(0.01, 100.0)]
    public float RepeatPenalty { get; set; } = 1.0f;

    [Parameter]
    public uint Seed { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[] Stop { get; set; } = [];

    [Parameter]
    public SwitchParameter Stream { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Grammar { get; set; }

    /// <summary>A JSON schema as a string or a hashtable.</summary>
    [Parameter]
    [ValidateNotNull]
    public object? JsonSchema { get; set; }

    [Parameter]
    public SwitchParameter AsObject { get; set; }

    protected override void ProcessRecord()
    {
        _ranOnce = true;
        if (Prompt is null && Messages is null && System is null)
        {
            WriteError(new ErrorRecord(new ArgumentException("Give a -Prompt (or pipe prompts in) or -Messages."),
                "NothingToComplete", ErrorCategory.InvalidArgument, null));
            return;
        }
        Run();
    }

    protected override void EndProcessing()
    {
        // A chat given only as -Messages with nothing piped in still runs once.
        if (!_ranOnce && Messages is not null) Run();
    }

    protected override void StopProcessing() => _cancellation.Cancel();

    private void Run()
    {
        var model = ResolveModel();
        if (model is null) return;
        CompletionRequest request;
        try { request = BuildRequest(); }
        catch (ArgumentException e)
        {
            WriteError(new ErrorRecord(e, "InvalidCompletionRequest", ErrorCategory.InvalidArgument, Prompt));
            return;
        }

        CompletionResult? result = null;
        try
        {
            foreach (var chunk in CompletionEngine.Stream(model, request, _cancellation.Token))
            {
                if (chunk.Result is not null) { result = chunk.Result; break; }
                if (Stream && chunk.Text.Length > 0) Host.UI.Write(chunk.Text);
                this.WriteNativeLog();
            }
        }
        catch (ArgumentException e)
        {
            WriteError(new ErrorRecord(e, "InvalidCompletionRequest", ErrorCategory.InvalidArgument, Prompt));
            return;
        }
        catch (ObjectDisposedException e)
        {
            WriteError(new ErrorRecord(e, "ModelRemoved", ErrorCategory.InvalidOperation, model.Name));
            return;
        }
        catch (InvalidOperationException e)
        {
            WriteError(new ErrorRecord(e, "CompletionFailed", ErrorCategory.InvalidOperation, model.Name));
            return;
        }
        finally { this.WriteNativeLog(); }

        if (Stream) Host.UI.WriteLine();
        if (result is null) return;
        WriteVerbose($"{result.FinishReason}: {result.PromptTokens} prompt tokens ({result.PromptTokensPerSecond:N0}/s), {result.CompletionTokens} generated ({result.TokensPerSecond:N1}/s).");
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
            WriteError(new ErrorRecord(new InvalidDataException($"The completion is not valid JSON ({e.Message}).{reason}", e),
                "CompletionNotJson", ErrorCategory.InvalidResult, result));
            return;
        }
        WriteObject(parsed, enumerateCollection: false);
    }

    private LoadedModel? ResolveModel()
    {
        try
        {
            var value = Model is PSObject ps ? ps.BaseObject : Model;
            return value switch
            {
                null => SessionHost.Session.GetModel(),
                LoadedModel loaded => loaded,
                string name => SessionHost.Session.GetModel(name),
                _ => throw new ArgumentException($"-Model takes a model name or a model object, not {value.GetType().Name}."),
            };
        }
        catch (InvalidOperationException e)
        {
            WriteError(new ErrorRecord(e, "NoModelLoaded", ErrorCategory.InvalidOperation, Model));
        }
        catch (ArgumentException e)
        {
            WriteError(new ErrorRecord(e, "InvalidModelArgument", ErrorCategory.InvalidArgument, Model));
        }
        return null;
    }

    private CompletionRequest BuildRequest() => new()
    {
        Prompt = Prompt,
        Messages = Messages?.Select(ToMessage).ToArray(),
        System = System,
        MaxTokens = MaxTokens,
        Temperature = Temperature,
        TopK = TopK,
        TopP = TopP,
        MinP = MinP,
        RepeatPenalty = RepeatPenalty,
        Seed = MyInvocation.BoundParameters.ContainsKey(nameof(Seed)) ? Seed : null,
        Stop = Stop,
        Grammar = Grammar,
        JsonSchema = JsonSchema is null ? null : JsonPSObject.ToJsonText(JsonSchema),
    };

    private static ChatMessage ToMessage(object? item)
    {
        var value = item is PSObject ps ? ps.BaseObject : item;
        string? role = null, content = null;
        if (value is IDictionary dictionary)
        {
            foreach (DictionaryEntry entry in dictionary)
            {
                var key = entry.Key.ToString();
                if (string.Equals(key, "Role", StringComparison.OrdinalIgnoreCase)) role = entry.Value?.ToString();
                else if (string.Equals(key, "Content", StringComparison.OrdinalIgnoreCase)) content = entry.Value?.ToString();
            }
        }
        else if (item is not null)
        {
            var wrapped = PSObject.AsPSObject(item);
            role = wrapped.Properties["Role"]?.Value?.ToString();
            content = wrapped.Properties["Content"]?.Value?.ToString();
        }
        if (string.IsNullOrWhiteSpace(role) || content is null)
            throw new ArgumentException("Each message needs a Role (system, user, assistant) and a Content, e.g. @{ Role = 'user'; Content = 'Hi' }.");
        return new ChatMessage(role, content);
    }
}
