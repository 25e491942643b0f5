using System.Management.Automation;
using CkLlm.Engine.Inference;
using CkLlm.Engine.Rag;

namespace CkLlm.Commands;

/// <summary>Answers questions from the knowledge base with a loaded model, citing numbered passages [n].</summary>
[Cmdlet(VerbsLifecycle.Invoke, "CkRag")]
[OutputType(typeof(RagAnswer), typeof(string))]
public sealed class InvokeCkRagCommand : QueryRetrievalCommandBase, IDynamicParameters
{
    public const string AnswerTypeName = "CkRagAnswer";
    private readonly GenerationParameters _generation = new();

    /// <summary>The question; pipe strings or objects with a Question property (Import-Csv rows).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string Question { get; set; } = "";

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Template { get; set; }

    [Parameter]
    public SwitchParameter PromptOnly { get; set; }

    /// <summary>-Model, -System, -Stream and the sampling parameters, as Invoke-CkCompletion takes them.</summary>
    public object GetDynamicParameters() => _generation;

    protected override void ProcessRecord()
    {
        if (string.IsNullOrWhiteSpace(Question))
        {
            WriteInputError(new ArgumentException("The question is empty."), "EmptyQuestion", ErrorCategory.InvalidArgument, Question);
            return;
        }
        var model = ResolveModel(_generation.Model);
        if (model is null) return;
        var retriever = OpenRetriever();
        var request = new RagRequest
        {
            Question = Question,
            Top = Top,
            Mode = Mode,
            Filter = ToDictionary(Filter),
            MinScore = MinScore,
            System = _generation.System,
            Template = Template,
            PromptOnly = PromptOnly,
            Generation = new CompletionRequest(_generation.ToSampling(MyInvocation)),
        };

        RagAnswer? answer = null;
        var streamed = false;
        var answered = TryEngine(() =>
        {
            try
            {
                foreach (var chunk in RagEngine.Stream(request, retriever, model, Cancellation))
                {
                    if (chunk.Answer is not null) { answer = chunk.Answer; break; }
                    if (_generation.Stream && chunk.Text.Length > 0)
                    {
                        WriteStreamedText(chunk.Text);
                        streamed = true;
                    }
                    this.WriteNativeLog();
                }
            }
            finally { this.WriteNativeLog(); }
        }, Question);
        if (!answered || answer is null) return;
        if (streamed) EndStreamedText();
        if (answer.NoKnowledge)
        {
            // Said once, as a warning; the answer object (not with -PromptOnly: there is no prompt) carries it too.
            WriteWarning(answer.Answer);
            if (PromptOnly) return;
        }

        WriteVerbose($"{answer.PassagesRetrieved} passages retrieved in {answer.RetrievalMs:N0} ms; {answer.Citations.Count} in the prompt " +
            $"({answer.PassagesTrimmed} trimmed, {answer.PassagesDropped} left out to fit {model.ContextSize} tokens); prompt {answer.PromptTokens} tokens, " +
            $"{answer.CompletionTokens} generated ({answer.TokensPerSecond:N1}/s).");
        if (answer.UnknownCitations.Count > 0)
            WriteWarning($"The answer cites [{string.Join("], [", answer.UnknownCitations)}], but the prompt had only {answer.Citations.Count} passage(s).");
        if (PromptOnly)
        {
            WriteObject(answer.Prompt);
            return;
        }
        var output = PSObject.AsPSObject(answer);
        output.TypeNames.Insert(0, AnswerTypeName);
        WriteObject(output);
    }
}
