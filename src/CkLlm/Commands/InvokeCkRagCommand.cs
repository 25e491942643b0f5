using System.Collections;
using System.Management.Automation;
using CkLlm.Engine.Inference;
using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Model;
using CkLlm.Engine.Rag;

namespace CkLlm.Commands;

/// <summary>Answers questions from the knowledge base with a loaded model, citing numbered passages [n].</summary>
[Cmdlet(VerbsLifecycle.Invoke, "CkRag")]
[OutputType(typeof(RagAnswer), typeof(string))]
public sealed class InvokeCkRagCommand : RerankingCommandBase
{
    public const string AnswerTypeName = "CkRagAnswer";

    /// <summary>The question; pipe strings or objects with a Question property (Import-Csv rows).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string Question { get; set; } = "";

    /// <summary>A model name or a model object from Import-CkModel/Get-CkModel; default: the current model.</summary>
    [Parameter]
    [ValidateNotNull]
    public object? Model { get; set; }

    [Parameter]
    [ValidateRange(1, 100)]
    public int Top { get; set; } = 5;

    // A string, not the engine's SearchMode enum (see SearchCkKnowledgeCommand: engine value types in parameters load
    // the engine during Import-Module's type scan).
    [Parameter]
    [ValidateSet("Hybrid", "Vector", "Keyword", IgnoreCase = true)]
    public string Mode { get; set; } = "Hybrid";

    [Parameter]
    public Hashtable? Filter { get; set; }

    [Parameter]
    public double MinScore { get; set; }

    [Parameter]
    public SwitchParameter Stream { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? System { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Template { get; set; }

    [Parameter]
    public SwitchParameter PromptOnly { get; set; }

    // Sampling parameters: the same names, ranges and defaults as Invoke-CkCompletion.
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

    protected override void ProcessRecord()
    {
        if (string.IsNullOrWhiteSpace(Question))
        {
            WriteError(new ErrorRecord(new ArgumentException("The question is empty."), "EmptyQuestion", ErrorCategory.InvalidArgument, Question));
            return;
        }
        var model = ResolveModel();
        if (model is null) return;
        var knowledgeBase = OpenKnowledgeBase();
        var reranker = ResolveReranker();
        var request = new RagRequest
        {
            Question = Question,
            Top = Top,
            Mode = Mode,
            Filter = ToDictionary(Filter),
            MinScore = MinScore,
            System = System,
            Template = Template,
            PromptOnly = PromptOnly,
            Generation = new CompletionRequest
            {
                MaxTokens = MaxTokens,
                Temperature = Temperature,
                TopK = TopK,
                TopP = TopP,
                MinP = MinP,
                RepeatPenalty = RepeatPenalty,
                Seed = MyInvocation.BoundParameters.ContainsKey(nameof(Seed)) ? Seed : null,
                Stop = Stop,
            },
        };

        RagAnswer? answer = null;
        var streamed = false;
        try
        {
            foreach (var chunk in RagEngine.Stream(request, new KnowledgeRagRetriever(knowledgeBase, reranker), new ModelRagGenerator(model), Cancellation))
            {
                if (chunk.Answer is not null) { answer = chunk.Answer; break; }
                if (Stream && chunk.Text.Length > 0)
                {
                    Host.UI.Write(chunk.Text);
                    streamed = true;
                }
                this.WriteNativeLog();
            }
        }
        catch (OperationCanceledException)
        {
            return; // Ctrl+C during retrieval: stop quietly, like a cancelled generation
        }
        catch (RagBudgetException e)
        {
            WriteError(new ErrorRecord(e, "PromptDoesNotFit", ErrorCategory.LimitsExceeded, Question));
            return;
        }
        catch (ObjectDisposedException e)
        {
            WriteError(new ErrorRecord(e, "ModelRemoved", ErrorCategory.InvalidOperation, model.Name));
            return;
        }
        catch (Exception e) when (e is KnowledgeBaseException or ArgumentException or IOException)
        {
            WriteError(ToErrorRecord(e, Question));
            return;
        }
        catch (InvalidOperationException e)
        {
            WriteError(new ErrorRecord(e, "RagFailed", ErrorCategory.InvalidOperation, Question));
            return;
        }
        finally { this.WriteNativeLog(); }

        if (answer is null) return;
        if (streamed) Host.UI.WriteLine();
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
}
