using System.Management.Automation;
using CkLlm.Engine.Inference;

namespace CkLlm.Commands;

/// <summary>
/// -Stream and the sampling parameters of every cmdlet that generates text, declared once and mapped to the engine's one
/// <see cref="SamplingOptions"/> record. The cmdlets bind them as dynamic parameters through an instance: Invoke-CkCompletion
/// through <see cref="GenerationCommandBase"/>; Invoke-CkRag and the chat cmdlets, whose one base class is the retrieval
/// base, directly. Parameters of a cmdlet's own class are bound first,
/// so none may be named like a prefix of these (PowerShell would call it ambiguous before it sees them).
/// </summary>
public class SamplingParameters
{
    /// <summary>Writes the text as it is generated to the information stream (shown like Write-Host; 6>&amp;1 captures it).</summary>
    [Parameter]
    public SwitchParameter Stream { get; set; }

    [Parameter]
    [ValidateRange(0, 1 << 20)]
    public int MaxTokens { get; set; } = SamplingOptions.DefaultMaxTokens;

    [Parameter]
    [ValidateRange(0.0, 100.0)]
    public float Temperature { get; set; } = SamplingOptions.DefaultTemperature;

    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int TopK { get; set; } = SamplingOptions.DefaultTopK;

    [Parameter]
    [ValidateRange(0.0, 1.0)]
    public float TopP { get; set; } = SamplingOptions.DefaultTopP;

    [Parameter]
    [ValidateRange(0.0, 1.0)]
    public float MinP { get; set; } = SamplingOptions.DefaultMinP;

    [Parameter]
    [ValidateRange(0.01, 100.0)]
    public float RepeatPenalty { get; set; } = SamplingOptions.DefaultRepeatPenalty;

    [Parameter]
    public uint Seed { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[] Stop { get; set; } = [];

    /// <summary>The sampling parameters as the engine's record; Seed only when it was given (otherwise random).</summary>
    public SamplingOptions ToSampling(InvocationInfo invocation)
    {
        ArgumentNullException.ThrowIfNull(invocation);
        return new()
        {
            MaxTokens = MaxTokens,
            Temperature = Temperature,
            TopK = TopK,
            TopP = TopP,
            MinP = MinP,
            RepeatPenalty = RepeatPenalty,
            Seed = invocation.BoundParameters.ContainsKey(nameof(Seed)) ? Seed : null,
            Stop = Stop,
        };
    }
}

/// <summary>-Model and -System on top of <see cref="SamplingParameters"/>: the cmdlets that generate from a prompt.</summary>
public sealed class GenerationParameters : SamplingParameters
{
    /// <summary>A model name or a model object from Import-CkModel/Get-CkModel; default: the current model.</summary>
    [Parameter]
    [ValidateNotNull]
    public object? Model { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? System { get; set; }
}

/// <summary>The cmdlets that generate text from a prompt or chat (Invoke-CkCompletion): <see cref="GenerationParameters"/>.</summary>
public abstract class GenerationCommandBase : CkCmdlet, IDynamicParameters
{
    /// <summary>The bound generation parameters.</summary>
    protected GenerationParameters Generation { get; } = new();

    public object GetDynamicParameters() => Generation;

    protected bool Stream => Generation.Stream;

    protected SamplingOptions Sampling() => Generation.ToSampling(MyInvocation);

    protected object? Model => Generation.Model;

    protected string? System => Generation.System;
}
