using CkLlm.Engine.Inference;

namespace CkLlm.Engine.Tests.Inference;

public class JsonSchemaGrammarTests
{
    [Fact]
    public void ObjectWithRequiredAndOptionalProperties()
    {
        var gbnf = JsonSchemaGrammar.ToGbnf("""{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}},"required":["b"]}""");
        Assert.StartsWith("root ::= \"{\" ws \"\\\"b\\\"\" ws \":\" ws integer (ws \",\" ws \"\\\"a\\\"\" ws \":\" ws string)? ws \"}\"", gbnf);
        Assert.Contains("integer ::= ", gbnf);
        Assert.Contains("string ::= ", gbnf);
        Assert.Contains("ws ::= ", gbnf);
    }

    [Fact]
    public void EnumBecomesAlternativesOfJsonLiterals()
    {
        var gbnf = JsonSchemaGrammar.ToGbnf("""{"enum":["x",1,true,null]}""");
        Assert.StartsWith("root ::= \"\\\"x\\\"\" | \"1\" | \"true\" | \"null\"", gbnf);
    }

    [Fact]
    public void PrimitiveRootGetsARootRule()
    {
        var gbnf = JsonSchemaGrammar.ToGbnf("""{"type":"boolean"}""");
        Assert.StartsWith("root ::= boolean\n", gbnf);
    }

    [Fact]
    public void ArrayBoundsBecomeRepetitions()
    {
        var gbnf = JsonSchemaGrammar.ToGbnf("""{"type":"array","items":{"type":"number"},"minItems":1,"maxItems":3}""");
        Assert.StartsWith("root ::= \"[\" ws number (ws \",\" ws number){0,2} ws \"]\"", gbnf);
    }

    [Theory]
    [InlineData("""{"$ref":"#/x"}""", "$ref")]
    [InlineData("""{"type":"string","pattern":"a+"}""", "pattern")]
    [InlineData("""{"type":"object","properties":{},"required":["a"]}""", "'a'")]
    [InlineData("""not json""", "not valid JSON")]
    public void UnsupportedOrInvalidSchemasAreRejectedClearly(string schema, string mentioned)
    {
        var error = Assert.Throws<ArgumentException>(() => JsonSchemaGrammar.ToGbnf(schema));
        Assert.Contains(mentioned, error.Message);
    }
}
