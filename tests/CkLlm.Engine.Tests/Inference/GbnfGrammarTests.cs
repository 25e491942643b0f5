using CkLlm.Engine.Inference;

namespace CkLlm.Engine.Tests.Inference;

public class GbnfGrammarTests(LoadedTestModels models) : IClassFixture<LoadedTestModels>
{
    [Theory]
    [InlineData("root ::= \"yes\" | \"no\"")]
    [InlineData("root ::= [a-z]+ (\",\" ws [a-z]+)*\nws ::= [ \\t\\n]*")]
    [InlineData("# a comment\nroot ::= item{2,4} # trailing\nitem ::= [^\\x00-\\x1F\"] | \"\\\\\" [\"\\\\nrt]")]
    [InlineData("root ::= (\n  \"a\"\n  | \"b\"\n)?")]
    [InlineData("root ::= x\nx ::= \"a\" x |")]
    [InlineData("root ::= [a-] \"\\u00e9\\U0001F600\" .")]
    [InlineData("root ::= \"\"")]
    public void AcceptsGrammarsLlamaCppRuns(string grammar)
    {
        GbnfGrammar.Validate(grammar);
        NativeGrammarProbe.Check(models.Plain, grammar);
    }

    [Theory]
    [InlineData("root ::= (", "unterminated group")]
    [InlineData("root ::= (\"a\"", "unterminated group")]
    [InlineData("root ::= \"a\")", "unbalanced ')'")]
    [InlineData("root ::= \"abc", "unterminated string literal")]
    [InlineData("root ::= [a-z", "unterminated character class")]
    [InlineData("root ::= []", "empty character class")]
    [InlineData("root ::= [z-a]", "reversed")]
    [InlineData("root ::= \"\\q\"", "unknown escape")]
    [InlineData("root ::= \"\\x4\"", "hex digits")]
    [InlineData("root ::= \"\\UFFFFFFFF\"", "not a valid Unicode code point")]
    [InlineData("root ::= \"\\uD800\"", "not a valid Unicode code point")]
    [InlineData("root ::= missing", "rule 'missing' is used but never defined")]
    [InlineData("start ::= \"a\"", "no 'root' rule")]
    [InlineData("root ::= root \"a\"", "left-recursive")]
    [InlineData("root ::= (\"a\"?)*", "left-recursive")]
    [InlineData("root ::= \"a\"\nroot ::= \"b\"", "defined twice")]
    [InlineData("root ::= * \"a\"", "must follow an item")]
    [InlineData("root ::= \"a\"{3,2}", "maximum below its minimum")]
    [InlineData("root ::= \"a\"{5000}", "exceeds 2000")]
    [InlineData("root ::= \"abc\"{1000}", "limit of 2000")]
    [InlineData("root = \"a\"", "expecting '::='")]
    [InlineData("root ::= \"a\" \"b\"\n  \"c\"", "expecting a rule name")]
    [InlineData("root ::= <[12]>", "token references")]
    [InlineData("root ::= \"a\0b\"", "NUL")]
    [InlineData("   \n", "empty")]
    public void RejectsWithTheReason(string grammar, string reason)
    {
        var error = Assert.Throws<GrammarException>(() => GbnfGrammar.Validate(grammar));
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NamesLineAndColumnOfAParseError()
    {
        var error = Assert.Throws<GrammarException>(() => GbnfGrammar.Validate("root ::= item\nitem ::= [0-9\n"));
        Assert.Equal(2, error.Line);
        Assert.Equal(10, error.Column);
        Assert.StartsWith("GBNF grammar parse error at line 2, column 10:", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FindsLeftRecursionThroughANullableChainLlamaCppMisses()
    {
        // llama.cpp only counts a rule with a literally empty alternative as nullable, so it accepts this grammar and
        // then recurses without end (root -> e -> f -> "" -> root ...) when it builds the first stacks.
        var error = Assert.Throws<GrammarException>(() => GbnfGrammar.Validate("root ::= e root \"a\" | \"b\"\ne ::= f\nf ::= \"\""));
        Assert.Contains("'root' is left-recursive", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RejectsDeepNestingBeforeTheNativeParserRecurses()
    {
        var grammar = "root ::= " + new string('(', 5000) + "\"a\"" + new string(')', 5000);
        var error = Assert.Throws<GrammarException>(() => GbnfGrammar.Validate(grammar));
        Assert.Contains("nested more than", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RejectsLongLeftmostRuleChains()
    {
        var rules = Enumerable.Range(0, 3000).Select(i => $"r{i} ::= r{i + 1} \"x\"").Prepend("root ::= r0").Append("r3000 ::= \"end\"");
        var error = Assert.Throws<GrammarException>(() => GbnfGrammar.Validate(string.Join("\n", rules)));
        Assert.Contains("chain of more than", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AMalformedGrammarIsAnArgumentErrorNotACrash()
    {
        // Before the check, LLamaSharp added llama.cpp's null grammar sampler and the process died with SIGSEGV.
        var request = new CompletionRequest { Prompt = "hi", Grammar = "root ::= (", MaxTokens = 4 };
        var error = Assert.Throws<GrammarException>(() => CompletionEngine.Complete(models.Plain, request));
        Assert.Contains("unterminated group", error.Message, StringComparison.Ordinal);
        Assert.IsAssignableFrom<ArgumentException>(error);
    }

    [Fact]
    public void TheNativeProbeRejectsWhatLlamaCppCannotParse()
    {
        var error = Assert.Throws<GrammarException>(() => NativeGrammarProbe.Check(models.Plain, "root ::= ("));
        Assert.Contains("llama.cpp could not parse the grammar", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void EverySchemaTheConverterEmitsPassesTheCheck()
    {
        string[] schemas =
        [
            """{"type":"object","properties":{"name":{"type":"string","maxLength":20},"tags":{"type":"array","items":{"enum":["a","b"]},"maxItems":3},"n":{"type":["integer","null"]}},"required":["name"]}""",
            """{"anyOf":[{"const":"x\"y"},{"type":"number"},{"type":"boolean"},{}]}""",
            """{"type":"object","properties":{"a":{"type":"object","properties":{}},"b":{"type":"array","minItems":2}}}""",
        ];
        foreach (var schema in schemas)
        {
            var grammar = JsonSchemaGrammar.ToGbnf(schema);
            GbnfGrammar.Validate(grammar);
            NativeGrammarProbe.Check(models.Plain, grammar);
        }
    }

    [Theory]
    [InlineData("""{"type":7}""")]
    [InlineData("""{"type":["string",3]}""")]
    [InlineData("""{"type":"object","properties":{"a":{}},"required":"a"}""")]
    [InlineData("""{"type":"object","properties":{"a":{}},"required":[1]}""")]
    [InlineData("""{"properties":[1]}""")]
    public void ASchemaKeywordOfTheWrongKindIsAnArgumentError(string schema)
    {
        // These used to escape as InvalidOperationException from System.Text.Json (found by Grammar.Fuzz.Tests.ps1).
        var error = Assert.ThrowsAny<ArgumentException>(() => JsonSchemaGrammar.ToGbnf(schema));
        Assert.Contains("at 'root", error.Message + error.InnerException?.Message, StringComparison.Ordinal);
    }
}
