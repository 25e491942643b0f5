namespace CkLlm.Engine.Inference;

/// <summary>Characters of literals and classes: escapes, surrogate pairs, code-point checks.</summary>
internal sealed partial class GbnfParser
{
    /// <summary>One character of a literal or class; returns its code point.</summary>
    private int ParseChar(bool inClass)
    {
        int start = _pos;
        char c = Current;
        if (c == '\\')
        {
            char e = Peek(1);
            _pos += 2;
            int value = e switch
            {
                'x' => ParseHex(2, start),
                'u' => ParseHex(4, start),
                'U' => ParseHex(8, start),
                't' => '\t',
                'r' => '\r',
                'n' => '\n',
                '\\' or '"' or '[' or ']' => e,
                '\0' when start + 1 >= _text.Length => throw Error(inClass ? "unterminated character class" : "unterminated string literal", start),
                _ => throw Error($"unknown escape '\\{e}'", start),
            };
            if (value > 0x10FFFF || value is >= 0xD800 and <= 0xDFFF)
                throw Error($"escape {_text[start.._pos]} is not a valid Unicode code point", start);
            return value;
        }
        if (char.IsHighSurrogate(c) && char.IsLowSurrogate(Peek(1)))
        {
            _pos += 2;
            return char.ConvertToUtf32(c, _text[_pos - 1]);
        }
        if (char.IsSurrogate(c)) throw Error("an unpaired UTF-16 surrogate is not a character", start);
        _pos++;
        return c;
    }

    private int ParseHex(int digits, int escapeStart)
    {
        long value = 0;
        for (int i = 0; i < digits; i++)
        {
            int d = Current switch
            {
                >= '0' and <= '9' => Current - '0',
                >= 'a' and <= 'f' => Current - 'a' + 10,
                >= 'A' and <= 'F' => Current - 'A' + 10,
                _ => -1,
            };
            if (d < 0) throw Error($"expecting {digits} hex digits in the escape", escapeStart);
            value = value * 16 + d;
            _pos++;
        }
        return value > int.MaxValue ? int.MaxValue : (int)value;
    }

    private static string Describe(int codePoint) =>
        codePoint is >= 0x20 and < 0x7F ? ((char)codePoint).ToString() : $"U+{codePoint:X4}";
}
