# Fuzzes -Grammar and -JsonSchema through Invoke-CkCompletion in ONE child pwsh: a grammar llama.cpp cannot parse
# used to kill the process (SIGSEGV), so the child must survive every input and report each bad one as an
# InvalidArgument ErrorRecord. CKLLM_FUZZ_GRAMMARS / CKLLM_FUZZ_SCHEMAS raise the counts for the soak
# the issue asks for (1000 / 500: about 6 minutes on a loaded 2-core machine, too long for every test run).
BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Model.TestHelpers.ps1')
    $script:dir = New-CkTestModelFolder
}

AfterAll {
    Remove-Item $script:dir -Recurse -Force -ErrorAction Ignore
}

Describe 'Invoke-CkCompletion grammar fuzz' {
    It 'survives random and mutated grammars and JSON schemas, each bad one an InvalidArgument error' {
        $grammars = if ($env:CKLLM_FUZZ_GRAMMARS) { [int]$env:CKLLM_FUZZ_GRAMMARS } else { 300 }
        $schemas = if ($env:CKLLM_FUZZ_SCHEMAS) { [int]$env:CKLLM_FUZZ_SCHEMAS } else { 150 }
        $model = Join-Path $script:dir 'tiny.gguf'
        $script = @"
`$ErrorActionPreference = 'Stop'
Import-Module '$($env:CKLLM_MODULE)'
`$null = Import-CkModel '$model' -ContextSize 256
`$random = [Random]::new(20261201)
`$seeds = @(
    'root ::= "yes" | "no"'
    'root ::= [a-z]+ ("," ws [a-z]+)*' + "``n" + 'ws ::= [ \t]*'
    'root ::= item{1,3}' + "``n" + 'item ::= "(" [0-9] ")" | "\x41" | "\u00e9"'
    'root ::= (x | y)? "!"' + "``n" + 'x ::= "a" x |' + "``n" + 'y ::= [^\n]'
    'root ::= "{" ws "\"k\"" ws ":" ws [0-9]+ ws "}"' + "``n" + 'ws ::= " "?'
)
`$pieces = @('root', ' ::= ', '::=', '"', '"a"', '[', ']', '[^', '-', '(', ')', '|', '*', '+', '?', '{', '}', '{2}', '{1,}', '{0,3}',
    '.', 'x', 'ws', "``n", ' ', '\', '\x', '\u12', '\U0010FFFF', '\q', '#', '<[1]>', '""', ',', 'root ::= ', '5000', "``t", 'é')
function New-Grammar {
    if (`$random.Next(2) -eq 0) {
        -join (1..(`$random.Next(1, 14)) | ForEach-Object { `$pieces[`$random.Next(`$pieces.Count)] })
    } else {
        `$text = [Text.StringBuilder]::new(`$seeds[`$random.Next(`$seeds.Count)])
        foreach (`$i in 1..(`$random.Next(1, 4))) {
            `$at = `$random.Next(`$text.Length + 1)
            switch (`$random.Next(3)) {
                0 { `$null = `$text.Insert(`$at, `$pieces[`$random.Next(`$pieces.Count)]) }
                1 { if (`$at -lt `$text.Length) { `$null = `$text.Remove(`$at, [Math]::Min(`$random.Next(1, 4), `$text.Length - `$at)) } }
                2 { if (`$at -lt `$text.Length) { `$text[`$at] = [char]`$random.Next(32, 127) } }
            }
        }
        `$text.ToString()
    }
}
`$keywords = @('type', 'properties', 'required', 'items', 'enum', 'const', 'anyOf', 'oneOf', 'minLength', 'maxLength', 'minItems', 'maxItems', 'pattern', '`$ref', 'title')
`$types = @('object', 'array', 'string', 'integer', 'number', 'boolean', 'null', 'date', 7)
function New-Schema([int] `$depth) {
    `$schema = [ordered]@{}
    foreach (`$i in 1..(`$random.Next(0, 4))) {
        `$key = `$keywords[`$random.Next(`$keywords.Count)]
        `$schema[`$key] = switch (`$key) {
            'type' { if (`$random.Next(4) -eq 0) { @(`$types[`$random.Next(7)], 'null') } else { `$types[`$random.Next(`$types.Count)] } }
            'properties' { `$p = [ordered]@{}; if (`$depth -lt 3) { foreach (`$j in 1..(`$random.Next(0, 3))) { `$p["p`$j"] = New-Schema (`$depth + 1) } }; `$p }
            'required' { @('p1', 'zz')[0..(`$random.Next(0, 2))] }
            'items' { if (`$depth -lt 3) { New-Schema (`$depth + 1) } else { @{} } }
            'enum' { @('a', 1, `$null, 'q"uote')[0..(`$random.Next(0, 4))] }
            'const' { @('x', 2, `$true)[`$random.Next(3)] }
            { `$_ -in 'anyOf', 'oneOf' } { if (`$depth -lt 3) { @(New-Schema (`$depth + 1); New-Schema (`$depth + 1)) } else { @() } }
            { `$_ -like 'm*' } { @(0, 3, 40, 3000, -1, 'x')[`$random.Next(6)] }
            default { 'a+' }
        }
    }
    `$schema
}
`$survived = 0; `$unexpected = 0
function Try-Completion([hashtable] `$arguments) {
    `$errors = `$null
    try { `$null = Invoke-CkCompletion 'x' -MaxTokens 2 -Temperature 0 @arguments -ErrorAction SilentlyContinue -ErrorVariable errors }
    catch { `$errors = @(`$_) }
    foreach (`$e in @(`$errors)) {
        if (`$e.CategoryInfo.Category -ne 'InvalidArgument') {
            `$script:unexpected++
            [Console]::Error.WriteLine("UNEXPECTED `$(`$e.CategoryInfo.Category): `$(`$e.Exception.Message)")
        }
    }
    `$script:survived++
}
foreach (`$n in 1..$grammars) {
    do { `$grammar = New-Grammar } while ([string]::IsNullOrEmpty(`$grammar))
    Try-Completion @{ Grammar = `$grammar }
}
foreach (`$n in 1..$schemas) { Try-Completion @{ JsonSchema = ((New-Schema 0) | ConvertTo-Json -Depth 10 -Compress) } }
"SURVIVED `$survived UNEXPECTED `$unexpected"
"@
        $run = Invoke-CkChildPwsh $script
        $run.ExitCode | Should -Be 0 -Because ($run.Output -join "`n")
        $run.Output | Should -Contain "SURVIVED $($grammars + $schemas) UNEXPECTED 0"
    }
}
