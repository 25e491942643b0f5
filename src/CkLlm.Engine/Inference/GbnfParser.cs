using System.Globalization;

namespace CkLlm.Engine.Inference;

/// <summary>
/// Parses GBNF the way llama.cpp's grammar parser reads it (rules <c>name ::= alternatives</c>, literals with
/// <c>\x \u \U \t \r \n \\ \" \[ \]</c> escapes, character classes, groups, <c>. * + ? {m} {m,} {m,n}</c>, <c>#</c>
/// comments) into a flat rule set for <see cref="GbnfGrammar"/>'s checks. It is stricter where llama.cpp is lenient
/// in ways that only hide mistakes: duplicate rules, empty or reversed character classes, invalid code points,
/// <c>{m,n}</c> with n &lt; m, NUL characters, and token references (<c>&lt;[id]&gt;</c>) are errors here.
/// </summary>
internal sealed partial class GbnfParser
{
    /// <summary>llama.cpp refuses larger repetition counts ("exceeds sane defaults").</summary>
    public const int MaxRepetitions = 2000;

    /// <summary>Nested groups recurse in the native parser; this keeps its stack small.</summary>
    public const int MaxNesting = 100;

    private readonly string _text;
    private int _pos;
    private int _depth;

    public GbnfParser(string text) => _text = text;

    /// <summary>Rule names by id; ids of rules synthesized for groups and repetitions are named "name_N".</summary>
    public List<string> Names { get; } = [];

    /// <summary>Per rule id: its alternatives, each a sequence of symbols (null: referenced but never defined).</summary>
    public List<List<List<GbnfSymbol>>?> Rules { get; } = [];

    /// <summary>Where each user-named rule was first referenced or defined (for error positions).</summary>
    public Dictionary<string, int> FirstSeen { get; } = new(StringComparer.Ordinal);

    /// <summary>Grammar elements after repetition expansion, as llama.cpp would store them (a size estimate).</summary>
    public long ExpandedElements { get; private set; }

    private readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal);

    public void Parse()
    {
        int nul = _text.IndexOf('\0');
        if (nul >= 0) throw Error("the grammar contains a NUL character", nul);
        SkipSpace(newlineOk: true);
        while (_pos < _text.Length) ParseRule();
    }

    public (int Line, int Column) Position(int offset)
    {
        int line = 1, lineStart = 0;
        for (int i = 0; i < offset && i < _text.Length; i++)
        {
            if (_text[i] == '\n') { line++; lineStart = i + 1; }
        }
        return (line, offset - lineStart + 1);
    }

    private GrammarException Error(string message, int? at = null)
    {
        var offset = at ?? _pos;
        var (line, column) = Position(offset);
        var near = offset < _text.Length ? _text.Substring(offset, Math.Min(20, _text.Length - offset)).Split('\n')[0] : "";
        return new GrammarException(near.Length > 0 ? $"{message} (at '{near}')" : $"{message} (at the end of the grammar)", line, column);
    }

    private char Current => _pos < _text.Length ? _text[_pos] : '\0';
    private char Peek(int ahead) => _pos + ahead < _text.Length ? _text[_pos + ahead] : '\0';

    private static bool IsWordChar(char c) => char.IsAsciiLetterOrDigit(c) || c == '-';

    private void SkipSpace(bool newlineOk)
    {
        while (_pos < _text.Length)
        {
            char c = _text[_pos];
            if (c == '#')
            {
                while (_pos < _text.Length && _text[_pos] is not ('\r' or '\n')) _pos++;
            }
            else if (c is ' ' or '\t' || (newlineOk && c is '\r' or '\n')) _pos++;
            else break;
        }
    }

    private string ParseName()
    {
        int start = _pos;
        while (_pos < _text.Length && IsWordChar(_text[_pos])) _pos++;
        if (_pos == start) throw Error("expecting a rule name", start);
        return _text[start.._pos];
    }

    private int SymbolId(string name, int offset)
    {
        if (_ids.TryGetValue(name, out var id)) return id;
        id = Names.Count;
        _ids[name] = id;
        Names.Add(name);
        Rules.Add(null);
        FirstSeen.TryAdd(name, offset);
        return id;
    }

    private int NewRule(string baseName)
    {
        int id = Names.Count;
        Names.Add($"{baseName}_{id}");
        Rules.Add([]);
        return id;
    }

    private void ParseRule()
    {
        int nameStart = _pos;
        var name = ParseName();
        SkipSpace(newlineOk: false);
        int id = SymbolId(name, nameStart);
        if (Rules[id] is not null)
            throw Error($"rule '{name}' is defined twice (llama.cpp would silently keep only the last definition)", nameStart);
        if (!(Current == ':' && Peek(1) == ':' && Peek(2) == '='))
            throw Error($"expecting '::=' after the rule name '{name}'");
        _pos += 3;
        SkipSpace(newlineOk: true);
        Rules[id] = ParseAlternates(name, nested: false);
        if (Current == '\r') _pos += Peek(1) == '\n' ? 2 : 1;
        else if (Current == '\n') _pos++;
        else if (_pos < _text.Length)
            throw Error(Current == ')' ? "unbalanced ')'" : "expecting a newline or the end of the grammar");
        SkipSpace(newlineOk: true);
    }

    private List<List<GbnfSymbol>> ParseAlternates(string ruleName, bool nested)
    {
        var alternatives = new List<List<GbnfSymbol>> { ParseSequence(ruleName, nested) };
        while (Current == '|')
        {
            _pos++;
            SkipSpace(newlineOk: true);
            alternatives.Add(ParseSequence(ruleName, nested));
        }
        ExpandedElements += alternatives.Count;
        return alternatives;
    }

    private List<GbnfSymbol> ParseSequence(string ruleName, bool nested)
    {
        var sequence = new List<GbnfSymbol>();
        // The last item (a literal is several terminals) is what a following * + ? {..} repeats.
        int lastStart = -1;
        long lastElements = 0;
        while (_pos < _text.Length)
        {
            char c = Current;
            int itemStart = _pos;
            if (c == '"')
            {
                _pos++;
                lastStart = sequence.Count;
                int chars = 0;
                while (Current != '"')
                {
                    if (_pos >= _text.Length) throw Error("unterminated string literal", itemStart);
                    ParseChar(inClass: false);
                    sequence.Add(GbnfSymbol.Terminal);
                    chars++;
                }
                _pos++;
                // An empty literal adds nothing; llama.cpp then has no item for a following repetition.
                if (chars == 0) lastStart = -1;
                lastElements = chars;
                ExpandedElements += chars;
                SkipSpace(nested);
            }
            else if (c == '[')
            {
                _pos++;
                if (Current == '^') _pos++;
                int elements = 0;
                while (Current != ']')
                {
                    if (_pos >= _text.Length) throw Error("unterminated character class", itemStart);
                    int charAt = _pos;
                    var low = ParseChar(inClass: true);
                    elements++;
                    if (Current == '-' && Peek(1) != ']')
                    {
                        _pos++;
                        if (_pos >= _text.Length) throw Error("unterminated character class", itemStart);
                        var high = ParseChar(inClass: true);
                        if (high < low) throw Error($"the range {Describe(low)}-{Describe(high)} is reversed", charAt);
                        elements++;
                    }
                }
                if (elements == 0) throw Error("empty character class", itemStart);
                _pos++;
                lastStart = sequence.Count;
                sequence.Add(GbnfSymbol.Terminal);
                lastElements = elements;
                ExpandedElements += elements;
                SkipSpace(nested);
            }
            else if (IsWordChar(c))
            {
                var name = ParseName();
                int id = SymbolId(name, itemStart);
                SkipSpace(nested);
                lastStart = sequence.Count;
                sequence.Add(GbnfSymbol.Rule(id));
                lastElements = 1;
                ExpandedElements++;
            }
            else if (c == '(')
            {
                if (++_depth > MaxNesting) throw Error($"groups are nested more than {MaxNesting} deep");
                _pos++;
                SkipSpace(newlineOk: true);
                int sub = NewRule(ruleName);
                Rules[sub] = ParseAlternates(ruleName, nested: true);
                if (Current != ')')
                    throw _pos >= _text.Length ? Error("unterminated group: expecting ')'", itemStart) : Error("expecting ')'");
                _pos++;
                _depth--;
                lastStart = sequence.Count;
                sequence.Add(GbnfSymbol.Rule(sub));
                lastElements = 1;
                ExpandedElements++;
                SkipSpace(nested);
            }
            else if (c == '.')
            {
                _pos++;
                lastStart = sequence.Count;
                sequence.Add(GbnfSymbol.Terminal);
                lastElements = 1;
                ExpandedElements++;
                SkipSpace(nested);
            }
            else if (c is '*' or '+' or '?' or '{')
            {
                var (min, max) = ParseRepetition();
                if (lastStart < 0) throw Error($"'{c}' must follow an item to repeat", itemStart);
                Repeat(sequence, lastStart, lastElements, min, max, ruleName, itemStart);
                // A repeated item becomes (copies plus) one synthesized rule; repeating it again repeats that rule.
                lastStart = sequence.Count - 1;
                lastElements = 1;
            }
            else if (c == '<' || (c == '!' && Peek(1) == '<'))
            {
                throw Error("token references (<[id]> or <token>) are not supported; match the text instead");
            }
            else break;
        }
        return sequence;
    }

    private (int Min, int Max) ParseRepetition()
    {
        char c = Current;
        _pos++;
        if (c != '{')
        {
            SkipSpace(newlineOk: false);
            return c switch { '*' => (0, -1), '+' => (1, -1), _ => (0, 1) };
        }
        SkipSpace(newlineOk: false);
        int min = ParseCount();
        SkipSpace(newlineOk: false);
        int max;
        if (Current == '}') max = min;
        else if (Current == ',')
        {
            _pos++;
            SkipSpace(newlineOk: false);
            max = char.IsAsciiDigit(Current) ? ParseCount() : -1;
            SkipSpace(newlineOk: false);
            if (Current != '}') throw Error("expecting '}'");
        }
        else throw Error("expecting ',' or '}' in a repetition");
        _pos++;
        SkipSpace(newlineOk: false);
        if (max >= 0 && max < min) throw Error($"the repetition {{{min},{max}}} has a maximum below its minimum");
        return (min, max);
    }

    private int ParseCount()
    {
        int start = _pos;
        while (char.IsAsciiDigit(Current)) _pos++;
        if (_pos == start) throw Error("expecting a number");
        var digits = _text[start.._pos];
        if (digits.Length > 9 || int.Parse(digits, CultureInfo.InvariantCulture) > MaxRepetitions)
            throw Error($"repetition count {digits} exceeds {MaxRepetitions} (llama.cpp's limit)", start);
        return int.Parse(digits, CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Rewrites the last item as llama.cpp does: <c>S{m,n}</c> is m copies of S followed by optional copies held in
    /// synthesized rules. For the checks one synthesized rule stands for the optional chain: <c>R ::= S R |</c>
    /// when unbounded (so a nullable S makes R left-recursive, exactly as natively), else <c>R ::= S |</c>.
    /// </summary>
    private void Repeat(List<GbnfSymbol> sequence, int lastStart, long lastElements, int min, int max, string ruleName, int at)
    {
        var item = sequence.GetRange(lastStart, sequence.Count - lastStart);
        long copies = Math.Max(min, max);
        if (lastElements * Math.Max(1, copies) >= MaxRepetitions && copies > 1)
            throw Error($"repeating an item of {lastElements} elements {copies} times exceeds llama.cpp's limit of {MaxRepetitions}", at);
        ExpandedElements += lastElements * Math.Max(1, copies) + 3L * Math.Max(1, max < 0 ? 1 : max - min);
        sequence.RemoveRange(lastStart, sequence.Count - lastStart);
        for (int i = 0; i < min; i++) sequence.AddRange(item);
        int optional = max < 0 ? 1 : max - min;
        if (optional == 0) return;
        int rest = NewRule(ruleName);
        var loop = new List<GbnfSymbol>(item);
        if (max < 0) loop.Add(GbnfSymbol.Rule(rest));
        Rules[rest] = [loop, []];
        sequence.Add(GbnfSymbol.Rule(rest));
    }
}

/// <summary>A symbol of a flattened rule: a terminal (consumes input) or a reference to a rule id.</summary>
internal readonly record struct GbnfSymbol(int RuleId)
{
    public static readonly GbnfSymbol Terminal = new(-1);
    public static GbnfSymbol Rule(int id) => new(id);
    public bool IsTerminal => RuleId < 0;
}
