namespace CkLlm.Engine.Inference;

/// <summary>
/// Checks a GBNF grammar in managed code before llama.cpp sees it. llama.cpp answers a grammar it cannot parse with a
/// null sampler that LLamaSharp 0.30 adds to its chain unchecked (SIGSEGV, the user's pwsh dies), and recurses without
/// bound on left recursion it fails to notice (its check only treats rules with a literally empty alternative as
/// nullable). So everything llama.cpp's parser rejects is rejected here with line and column, plus: left recursion
/// through any nullable prefix, duplicate rules, grammars whose expansion or rule chains are large enough to exhaust
/// native memory or stack.
/// </summary>
public static class GbnfGrammar
{
    /// <summary>Longest grammar text accepted (characters).</summary>
    public const int MaxLength = 1_000_000;

    /// <summary>Most grammar elements after repetition expansion.</summary>
    public const long MaxExpandedElements = 200_000;

    /// <summary>Deepest chain of leftmost rule references (llama.cpp follows such chains recursively).</summary>
    public const int MaxLeftChain = 1_000;

    /// <summary>Throws <see cref="GrammarException"/> (an <see cref="ArgumentException"/>) naming the first problem.</summary>
    public static void Validate(string grammar, string root = "root")
    {
        ArgumentNullException.ThrowIfNull(grammar);
        if (string.IsNullOrWhiteSpace(grammar)) throw new GrammarException("the grammar is empty");
        if (grammar.Length > MaxLength) throw new GrammarException($"the grammar has {grammar.Length} characters; at most {MaxLength} are accepted");

        var parser = new GbnfParser(grammar);
        parser.Parse();

        for (int id = 0; id < parser.Names.Count; id++)
        {
            if (parser.Rules[id] is not null) continue;
            var name = parser.Names[id];
            var (line, column) = parser.Position(parser.FirstSeen[name]);
            throw new GrammarException($"rule '{name}' is used but never defined", line, column);
        }
        if (!parser.Names.Contains(root)) throw new GrammarException($"the grammar has no '{root}' rule (generation starts there)");
        if (parser.ExpandedElements > MaxExpandedElements)
            throw new GrammarException($"the grammar expands to about {parser.ExpandedElements:N0} elements; at most {MaxExpandedElements:N0} are accepted (lower the repetition counts)");

        var rules = parser.Rules.Select(r => r!).ToList();
        var nullable = Nullable(rules);
        var leftEdges = LeftEdges(rules, nullable);
        CheckLeftRecursion(parser.Names, leftEdges);
    }

    /// <summary>Rules that can match the empty string (fixpoint over all rules, not just literal empty alternatives).</summary>
    private static bool[] Nullable(List<List<List<GbnfSymbol>>> rules)
    {
        var nullable = new bool[rules.Count];
        bool changed = true;
        while (changed)
        {
            changed = false;
            for (int id = 0; id < rules.Count; id++)
            {
                if (nullable[id]) continue;
                if (rules[id].Any(alt => alt.All(s => !s.IsTerminal && nullable[s.RuleId])))
                {
                    nullable[id] = true;
                    changed = true;
                }
            }
        }
        return nullable;
    }

    /// <summary>For each rule, the rules it can reach without consuming input first.</summary>
    private static List<int>[] LeftEdges(List<List<List<GbnfSymbol>>> rules, bool[] nullable)
    {
        var edges = new List<int>[rules.Count];
        for (int id = 0; id < rules.Count; id++)
        {
            var targets = new HashSet<int>();
            foreach (var alternative in rules[id])
            {
                foreach (var symbol in alternative)
                {
                    if (symbol.IsTerminal) break;
                    targets.Add(symbol.RuleId);
                    if (!nullable[symbol.RuleId]) break;
                }
            }
            edges[id] = [.. targets];
        }
        return edges;
    }

    /// <summary>Iterative depth-first search (a deep grammar must not overflow our stack either).</summary>
    private static void CheckLeftRecursion(List<string> names, List<int>[] edges)
    {
        const byte unvisited = 0, inProgress = 1, done = 2;
        var state = new byte[edges.Length];
        var depth = new int[edges.Length];
        var stack = new Stack<(int Rule, int NextEdge)>();
        for (int start = 0; start < edges.Length; start++)
        {
            if (state[start] != unvisited) continue;
            stack.Push((start, 0));
            state[start] = inProgress;
            while (stack.Count > 0)
            {
                var (rule, next) = stack.Pop();
                if (next < edges[rule].Count)
                {
                    stack.Push((rule, next + 1));
                    int target = edges[rule][next];
                    if (state[target] == inProgress)
                        throw new GrammarException($"rule '{UserName(names[target])}' is left-recursive (it can reach itself without consuming input), which llama.cpp cannot run");
                    if (state[target] == unvisited)
                    {
                        state[target] = inProgress;
                        stack.Push((target, 0));
                    }
                    continue;
                }
                state[rule] = done;
                depth[rule] = 1 + (edges[rule].Count == 0 ? 0 : edges[rule].Max(t => depth[t]));
                if (depth[rule] > MaxLeftChain)
                    throw new GrammarException($"rule '{UserName(names[rule])}' starts a chain of more than {MaxLeftChain} nested rule references");
            }
        }
    }

    /// <summary>Synthesized rules are named "rule_N" after the rule they were written in.</summary>
    private static string UserName(string name)
    {
        int underscore = name.LastIndexOf('_');
        return underscore > 0 ? name[..underscore] : name;
    }
}
