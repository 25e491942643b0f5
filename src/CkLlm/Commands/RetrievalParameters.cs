using System.Management.Automation;

namespace CkLlm.Commands;

/// <summary>
/// The one definition of the retrieval parameters' values (Top, Mode, MinScore) that Search-CkKnowledge, Invoke-CkRag
/// and Measure-CkRetrieval declare. Strings, not the engine's SearchMode enum: a value-type parameter of an engine type
/// would make PowerShell's type scan at Import-Module load the engine before the module's load context exists.
/// </summary>
public static class RetrievalParameters
{
    public const int DefaultTop = 5;
    public const int MinTop = 1;
    public const int MaxTop = 1000;
    public const string DefaultMode = "Hybrid";

    /// <summary>The search modes, as -Mode takes them (any case).</summary>
    public static readonly IReadOnlyList<string> Modes = ["Hybrid", "Vector", "Keyword"];

    /// <summary>A mode name in any case as its canonical spelling ("vector" -> "Vector").</summary>
    public static string Canonical(string mode) =>
        Modes.FirstOrDefault(m => string.Equals(m, mode, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"Unknown search mode '{mode}'. Use {string.Join(", ", Modes)}.", nameof(mode));
}

/// <summary>-Mode's allowed values (with tab completion): <see cref="RetrievalParameters.Modes"/>.</summary>
public sealed class SearchModeValues : IValidateSetValuesGenerator
{
    public string[] GetValidValues() => [.. RetrievalParameters.Modes];
}

/// <summary>-MinScore: any finite number (the scale depends on the mode: cosine, BM25 or a fused 0-1 score).</summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class ValidateMinScoreAttribute : ValidateArgumentsAttribute
{
    protected override void Validate(object arguments, EngineIntrinsics engineIntrinsics)
    {
        var value = LanguagePrimitives.ConvertTo<double>(arguments);
        if (!double.IsFinite(value)) throw new ValidationMetadataException("MinScore must be a finite number.");
    }
}
