using System.Management.Automation;
using CkLlm.Engine.Model.Generation;

namespace CkLlm.Commands;

/// <summary>Tab completion of -Quantization (New-CkModel, Start-CkFineTune) from the engine's list of llama.cpp file
/// types (called only when completing, after import).</summary>
public sealed class QuantizationNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        System.Management.Automation.Language.CommandAst commandAst, System.Collections.IDictionary fakeBoundParameters) =>
        ModelQuantization.Names
            .Where(n => n.StartsWith(wordToComplete ?? "", StringComparison.OrdinalIgnoreCase))
            .Select(n => new CompletionResult(n));
}
