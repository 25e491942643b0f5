using System.Management.Automation;
using CkLlm.Engine.Inference;

namespace CkLlm.Commands;

/// <summary>
/// The cmdlets that generate text (Invoke-CkCompletion, Invoke-CkRag): -Model and -System on top of the shared
/// -Stream and sampling parameters of <see cref="SamplingCommandBase"/>.
/// </summary>
public abstract class GenerationCommandBase : SamplingCommandBase
{
    /// <summary>A model name or a model object from Import-CkModel/Get-CkModel; default: the current model.</summary>
    [Parameter]
    [ValidateNotNull]
    public object? Model { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? System { get; set; }
}

/// <summary>
/// -Stream and the sampling parameters, declared once for every cmdlet that generates (Invoke-CkCompletion,
/// Invoke-CkRag, Invoke-CkChat) and mapped to the engine's one <see cref="SamplingOptions"/> record.
/// </summary>
public abstract class SamplingCommandBase : CkCmdlet
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

    /// <summary>The sampling parameters as the engine's record; Seed only when given (otherwise random).</summary>
    protected SamplingOptions Sampling() => new()
    {
        MaxTokens = MaxTokens,
        Temperature = Temperature,
        TopK = TopK,
        TopP = TopP,
        MinP = MinP,
        RepeatPenalty = RepeatPenalty,
        Seed = MyInvocation.BoundParameters.ContainsKey(nameof(Seed)) ? Seed : null,
        Stop = Stop,
    };
}
