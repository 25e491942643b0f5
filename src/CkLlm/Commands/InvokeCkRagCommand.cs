using System.Collections;
using System.Management.Automation;
using CkLlm.Engine.Inference;
using CkLlm.Engine.Rag;

namespace CkLlm.Commands;

/// <summary>Answers questions from the knowledge base with a loaded model, citing numbered passages [n].</summary>
[Cmdlet(VerbsLifecycle.Invoke, "CkRag")]
[OutputType(typeof(RagAnswer), typeof(string))]
public sealed class InvokeCkRagCommand : GenerationCommandBase
{
    public const string AnswerTypeName = "CkRagAnswer";

    /// <summary>The question; pipe strings or objects with a Question property (Import-Csv rows).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string Question { get; set; } = "";

    /// <summary>Knowledge base directory; defaults to the session's current one (or ~/.ckllm/knowledge).</summary>
    /// <remarks>Declared here and in <see cref="KnowledgeCommandBase"/>: a cmdlet has one base class, and this one's is
    /// the generation base; both resolve it through <see cref="CkCmdlet.OpenKnowledgeBase"/>.</remarks>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? KnowledgeBase { get; set; }

    [Parameter]
    [ValidateRange(RetrievalParameters.MinTop, RetrievalParameters.MaxTop)]
    public int Top { get; set; } = RetrievalParameters.DefaultTop;

    [Parameter]
    [ValidateSet(typeof(SearchModeValues), IgnoreCase = true)]
    public string Mode { get; set; } = RetrievalParameters.DefaultMode;

    [Parameter]
    public Hashtable? Filter { get; set; }

    [Parameter]
    [ValidateMinScore]
    public double MinScore { get; set; }

    /// <summary>A GGUF reranker file, or the name of a loaded chat model to judge relevance: searches deeper, reorders, keeps -Top.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Rerank { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Template { get; set; }

    [Parameter]
    public SwitchParameter PromptOnly { get; set; }

    protected override void ProcessRecord()
    {
        if (string.IsNullOrWhiteSpace(Question))
        {
            WriteInputError(new ArgumentException("The question is empty."), "EmptyQuestion", ErrorCategory.InvalidArgument, Question);
            return;
        }
        var model = ResolveModel(Model);
        if (model is null) return;
        var knowledgeBase = OpenKnowledgeBase(KnowledgeBase, mustExist: true);
        var reranker = ResolveReranker(Rerank);
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
            Generation = new CompletionRequest(Sampling()),
        };

        RagAnswer? answer = null;
        var streamed = false;
        var answered = TryEngine(() =>
        {
            try
            {
                foreach (var chunk in RagEngine.Stream(request, new KnowledgeRagRetriever(knowledgeBase, reranker), model, Cancellation))
                {
                    if (chunk.Answer is not null) { answer = chunk.Answer; break; }
                    if (Stream && chunk.Text.Length > 0)
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
