using System.Globalization;
using System.Text;
using System.Text.Json;

namespace CkLlm.Engine.Inference;

/// <summary>
/// Converts a JSON schema into a GBNF grammar that llama.cpp's grammar sampler enforces. LLamaSharp 0.30 has no such
/// converter (llama.cpp's lives in its C++ "common" library, which LLamaSharp does not ship).
/// Supported subset: type object (properties in declared order, required; no additional properties), string
/// (minLength/maxLength), integer, number, boolean, null, array (items, minItems/maxItems), enum, const, anyOf/oneOf,
/// a list of types, and {} for any JSON value. Output is compact JSON (at most one space between tokens). Anything
/// else ($ref, pattern, format, ...) is rejected with an ArgumentException naming the keyword.
/// </summary>
public static class JsonSchemaGrammar
{
    private static readonly HashSet<string> IgnoredKeywords = new(StringComparer.Ordinal)
    {
        "$schema", "$id", "title", "description", "default", "examples", "additionalProperties", "$comment",
    };

    public static string ToGbnf(string jsonSchema)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(jsonSchema);
        JsonDocument document;
        try { document = JsonDocument.Parse(jsonSchema); }
        catch (JsonException e) { throw new ArgumentException($"The JSON schema is not valid JSON: {e.Message}", nameof(jsonSchema), e); }
        using (document)
        {
            var builder = new Builder();
            var root = builder.Visit(document.RootElement, "root");
            if (root != "root") builder.DefineRule("root", root);
            return builder.Render();
        }
    }

    private sealed class Builder
    {
        private readonly List<(string Name, string Body)> _rules = [];
        private readonly HashSet<string> _names = new(StringComparer.Ordinal);
        private readonly HashSet<string> _primitives = new(StringComparer.Ordinal);

        private static readonly Dictionary<string, string> PrimitiveBodies = new(StringComparer.Ordinal)
        {
            ["ws"] = "\" \"?",
            ["char"] = "[^\"\\\\\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4})",
            ["string"] = "\"\\\"\" char* \"\\\"\"",
            ["integer"] = "\"-\"? ([0-9] | [1-9] [0-9]{1,15})",
            ["number"] = "integer (\".\" [0-9]{1,15})? ([eE] [-+]? [0-9]{1,3})?",
            ["boolean"] = "\"true\" | \"false\"",
            ["null"] = "\"null\"",
            ["value"] = "object-any | array-any | string | number | boolean | null",
            ["object-any"] = "\"{\" ws (string ws \":\" ws value (ws \",\" ws string ws \":\" ws value)*)? ws \"}\"",
            ["array-any"] = "\"[\" ws (value (ws \",\" ws value)*)? ws \"]\"",
        };

        private static readonly Dictionary<string, string[]> PrimitiveDependencies = new(StringComparer.Ordinal)
        {
            ["string"] = ["char"],
            ["number"] = ["integer"],
            ["value"] = ["object-any", "array-any", "string", "number", "boolean", "null"],
            ["object-any"] = ["ws", "string", "value"],
            ["array-any"] = ["ws", "value"],
        };

        public void DefineRule(string name, string body)
        {
            _names.Add(name);
            _rules.Add((name, body));
        }

        public string Render()
        {
            var text = new StringBuilder();
            foreach (var (name, body) in _rules) text.Append(name).Append(" ::= ").Append(body).Append('\n');
            foreach (var name in _primitives.Order(StringComparer.Ordinal)) text.Append(name).Append(" ::= ").Append(PrimitiveBodies[name]).Append('\n');
            return text.ToString();
        }

        private string Primitive(string name)
        {
            if (_primitives.Add(name) && PrimitiveDependencies.TryGetValue(name, out var dependencies))
                foreach (var dependency in dependencies) Primitive(dependency);
            return name;
        }

        private string NewName(string hint)
        {
            var clean = new string(hint.Select(c => char.IsAsciiLetterOrDigit(c) ? char.ToLowerInvariant(c) : '-').ToArray()).Trim('-');
            if (clean.Length == 0) clean = "rule";
            var name = clean;
            for (var i = 2; _names.Contains(name) || PrimitiveBodies.ContainsKey(name); i++) name = $"{clean}-{i}";
            _names.Add(name);
            return name;
        }

        /// <summary>Returns a rule name (or literal expression) matching the schema; defines rules as needed.</summary>
        public string Visit(JsonElement schema, string hint)
        {
            // A keyword holding the wrong kind of JSON value ("required": "a", "type": [3]) is the schema's fault.
            try { return VisitSchema(schema, hint); }
            catch (InvalidOperationException e) { throw new ArgumentException($"The JSON schema at '{hint}' is malformed: {e.Message}", e); }
        }

        private string VisitSchema(JsonElement schema, string hint)
        {
            if (schema.ValueKind == JsonValueKind.True) return Primitive("value");
            if (schema.ValueKind != JsonValueKind.Object)
                throw new ArgumentException($"Schema at '{hint}' must be an object.");

            foreach (var property in schema.EnumerateObject())
            {
                if (IgnoredKeywords.Contains(property.Name)) continue;
                if (property.Name is "type" or "properties" or "required" or "items" or "enum" or "const" or "anyOf" or "oneOf"
                    or "minLength" or "maxLength" or "minItems" or "maxItems") continue;
                throw new ArgumentException($"JSON schema keyword '{property.Name}' (at '{hint}') is not supported. Supported: type, properties, required, items, enum, const, anyOf, oneOf, minLength, maxLength, minItems, maxItems.");
            }

            if (schema.TryGetProperty("const", out var constant)) return Define(hint, Literal(constant));
            if (schema.TryGetProperty("enum", out var values))
            {
                if (values.ValueKind != JsonValueKind.Array || values.GetArrayLength() == 0)
                    throw new ArgumentException($"'enum' at '{hint}' must be a non-empty array.");
                return Define(hint, string.Join(" | ", values.EnumerateArray().Select(Literal)));
            }
            foreach (var keyword in new[] { "anyOf", "oneOf" })
            {
                if (!schema.TryGetProperty(keyword, out var options)) continue;
                if (options.ValueKind != JsonValueKind.Array || options.GetArrayLength() == 0)
                    throw new ArgumentException($"'{keyword}' at '{hint}' must be a non-empty array.");
                var alternatives = options.EnumerateArray().Select((o, i) => Visit(o, $"{hint}-{i}")).ToList();
                return Define(hint, string.Join(" | ", alternatives));
            }

            if (!schema.TryGetProperty("type", out var type))
            {
                if (schema.TryGetProperty("properties", out _)) return VisitObject(schema, hint);
                if (schema.TryGetProperty("items", out _)) return VisitArray(schema, hint);
                return Primitive("value");
            }
            if (type.ValueKind is not (JsonValueKind.String or JsonValueKind.Array))
                throw new ArgumentException($"'type' at '{hint}' must be a type name or an array of type names.");
            if (type.ValueKind == JsonValueKind.Array)
            {
                var alternatives = type.EnumerateArray().Select(t => VisitType(schema, t.GetString() ?? "", hint)).ToList();
                return Define(hint, string.Join(" | ", alternatives));
            }
            return VisitType(schema, type.GetString() ?? "", hint);
        }

        private string VisitType(JsonElement schema, string type, string hint) => type switch
        {
            "object" => VisitObject(schema, hint),
            "array" => VisitArray(schema, hint),
            "string" => VisitString(schema, hint),
            "integer" => Primitive("integer"),
            "number" => Primitive("number"),
            "boolean" => Primitive("boolean"),
            "null" => Primitive("null"),
            _ => throw new ArgumentException($"JSON schema type '{type}' (at '{hint}') is not supported."),
        };

        private string VisitString(JsonElement schema, string hint)
        {
            var min = ReadCount(schema, "minLength", hint);
            var max = ReadCount(schema, "maxLength", hint);
            if (min is null && max is null) return Primitive("string");
            Primitive("char");
            return Define(hint, $"\"\\\"\" char{{{min ?? 0},{max?.ToString(CultureInfo.InvariantCulture) ?? ""}}} \"\\\"\"");
        }

        private string VisitArray(JsonElement schema, string hint)
        {
            Primitive("ws");
            var item = schema.TryGetProperty("items", out var items) ? Visit(items, $"{hint}-item") : Primitive("value");
            var min = ReadCount(schema, "minItems", hint) ?? 0;
            var max = ReadCount(schema, "maxItems", hint);
            string body;
            if (max == 0) body = "\"[\" ws \"]\"";
            else
            {
                var restMin = Math.Max(0, min - 1);
                var restMax = max is null ? "" : (max.Value - 1).ToString(CultureInfo.InvariantCulture);
                var list = $"{item} (ws \",\" ws {item}){{{restMin},{restMax}}}";
                body = min == 0 ? $"\"[\" ws ({list})? ws \"]\"" : $"\"[\" ws {list} ws \"]\"";
            }
            return Define(hint, body);
        }

        private string VisitObject(JsonElement schema, string hint)
        {
            Primitive("ws");
            var required = new HashSet<string>(StringComparer.Ordinal);
            if (schema.TryGetProperty("required", out var requiredList) && requiredList.ValueKind != JsonValueKind.Array)
                throw new ArgumentException($"'required' at '{hint}' must be an array of property names.");
            if (schema.TryGetProperty("required", out requiredList))
                foreach (var name in requiredList.EnumerateArray()) required.Add(name.GetString() ?? "");

            var pairs = new List<(string Pair, bool Required)>();
            if (schema.TryGetProperty("properties", out var properties))
            {
                foreach (var property in properties.EnumerateObject())
                {
                    var value = Visit(property.Value, $"{hint}-{property.Name}");
                    var pair = $"{QuoteLiteral(JsonSerializer.Serialize(property.Name))} ws \":\" ws {value}";
                    pairs.Add((pair, required.Contains(property.Name)));
                }
            }
            foreach (var name in required)
            {
                if (!pairs.Any(p => p.Pair.StartsWith(QuoteLiteral(JsonSerializer.Serialize(name)) + " ", StringComparison.Ordinal)))
                    throw new ArgumentException($"Required property '{name}' (at '{hint}') is not declared in 'properties'.");
            }
            if (pairs.Count == 0) return Primitive("object-any");

            // Required properties first (declared order), then each optional one may follow.
            var ordered = pairs.Where(p => p.Required).Concat(pairs.Where(p => !p.Required)).ToList();
            const string comma = "ws \",\" ws ";
            string inner;
            if (ordered[0].Required)
            {
                var parts = new List<string> { ordered[0].Pair };
                parts.AddRange(ordered.Skip(1).Select(p => p.Required ? comma + p.Pair : $"({comma}{p.Pair})?"));
                inner = string.Join(" ", parts);
            }
            else
            {
                // All optional: any one may come first, followed optionally by each later one.
                var alternatives = new List<string>();
                for (var first = 0; first < ordered.Count; first++)
                {
                    var parts = new List<string> { ordered[first].Pair };
                    parts.AddRange(ordered.Skip(first + 1).Select(p => $"({comma}{p.Pair})?"));
                    alternatives.Add("(" + string.Join(" ", parts) + ")");
                }
                inner = "(" + string.Join(" | ", alternatives) + ")?";
            }
            return Define(hint, $"\"{{\" ws {inner} ws \"}}\"");
        }

        private string Define(string hint, string body)
        {
            var name = hint == "root" && !_names.Contains("root") ? "root" : NewName(hint);
            _names.Add(name);
            _rules.Add((name, body));
            return name;
        }

        private static int? ReadCount(JsonElement schema, string keyword, string hint)
        {
            if (!schema.TryGetProperty(keyword, out var value)) return null;
            if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out var count) || count < 0)
                throw new ArgumentException($"'{keyword}' at '{hint}' must be a non-negative integer.");
            return count;
        }

        private static string Literal(JsonElement value) => QuoteLiteral(value.GetRawText() switch
        {
            var raw when value.ValueKind == JsonValueKind.String => JsonSerializer.Serialize(value.GetString()),
            var raw => raw,
        });

        /// <summary>A GBNF string literal matching <paramref name="text"/> exactly.</summary>
        private static string QuoteLiteral(string text)
        {
            var literal = new StringBuilder("\"");
            foreach (var c in text)
            {
                switch (c)
                {
                    case '"': literal.Append("\\\""); break;
                    case '\\': literal.Append("\\\\"); break;
                    case '\n': literal.Append("\\n"); break;
                    case '\r': literal.Append("\\r"); break;
                    case '\t': literal.Append("\\t"); break;
                    default: literal.Append(c); break;
                }
            }
            return literal.Append('"').ToString();
        }
    }
}
