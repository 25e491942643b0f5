namespace CkLlm.Engine.Inference;

/// <summary>A GBNF grammar that llama.cpp would reject, or that could make it recurse without end.</summary>
public sealed class GrammarException : ArgumentException
{
    public GrammarException(string message, int line = 0, int column = 0)
        : base(line > 0 ? $"GBNF grammar parse error at line {line}, column {column}: {message}" : $"GBNF grammar error: {message}")
    {
        Line = line;
        Column = column;
    }

    /// <summary>1-based line of the error, 0 when the error is about the grammar as a whole.</summary>
    public int Line { get; }

    /// <summary>1-based column of the error, 0 when the error is about the grammar as a whole.</summary>
    public int Column { get; }
}
