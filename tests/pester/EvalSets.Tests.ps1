# Shape of the blind retrieval evaluation sets under tests/eval/<set>/ and behaviour of their corpus builders.
# The full corpora are not built here (minutes on 2 cores): expected sources are checked against each builder's
# -ListOnly output, and the builders' conversions are run on tiny generated inputs.

BeforeDiscovery {
    $script:evalRoot = Join-Path $PSScriptRoot '../eval'
    $script:sets = @(Get-ChildItem $evalRoot -Directory | Where-Object { Test-Path (Join-Path $_.FullName 'questions.csv') } |
            ForEach-Object { @{ Name = $_.Name; Directory = $_.FullName } })
}

BeforeAll {
    $script:evalRoot = Join-Path $PSScriptRoot '../eval'

    function Test-SourceMatch([string] $Expected, [string[]] $RelativePaths) {
        # Measure-CkRetrieval's rule: the same path, the same bare file name, or a path suffix at a folder boundary.
        $expected = $Expected.Replace('\', '/')
        foreach ($path in $RelativePaths) {
            if ($path -eq $expected -or $path.EndsWith("/$expected", [StringComparison]::OrdinalIgnoreCase)) { return $true }
        }
        $false
    }
}

Describe 'The evaluation sets' {
    It 'are at least three, each with a corpus builder' {
        $sets = @(Get-ChildItem $evalRoot -Directory | Where-Object { Test-Path (Join-Path $_.FullName 'questions.csv') })
        $sets.Count | Should -BeGreaterOrEqual 3
        foreach ($set in $sets) { Join-Path $set.FullName 'Build-Corpus.ps1' | Should -Exist }
    }
}

Describe 'Evaluation set <Name>' -ForEach $sets {
    BeforeAll {
        $script:csv = Join-Path $Directory 'questions.csv'
        $script:rows = @(Import-Csv -LiteralPath $csv)
        $script:answered = @($rows | Where-Object ExpectedSource)
    }

    It 'has the columns Question, ExpectedSource, kind and split' {
        (Get-Content -LiteralPath $csv -TotalCount 1) | Should -BeExactly 'Question,ExpectedSource,kind,split'
    }

    It 'has at least 150 distinct, non-empty questions' {
        $rows.Count | Should -BeGreaterOrEqual 150
        @($rows | Where-Object { -not $_.Question.Trim() }).Count | Should -Be 0
        @($rows.Question | Sort-Object -Unique).Count | Should -Be $rows.Count
    }

    It 'labels every row with a known kind and split, and leaves the source empty exactly for no-answer rows' {
        @($rows | Where-Object kind -notin 'paraphrase', 'multi-sentence', 'no-answer').Count | Should -Be 0
        @($rows | Where-Object split -notin 'dev', 'test').Count | Should -Be 0
        @($rows | Where-Object { ($_.kind -eq 'no-answer') -ne (-not $_.ExpectedSource) }).Count | Should -Be 0
        foreach ($kind in 'paraphrase', 'multi-sentence', 'no-answer') { @($rows | Where-Object kind -eq $kind).Count | Should -BeGreaterThan 0 }
    }

    It 'keeps roughly a tenth of the questions without an answer' {
        $share = ($rows.Count - $answered.Count) / $rows.Count
        $share | Should -BeGreaterOrEqual 0.05
        $share | Should -BeLessOrEqual 0.2
    }

    It 'splits every kind evenly between dev and test' {
        foreach ($group in $rows | Group-Object kind) {
            $dev = @($group.Group | Where-Object split -eq 'dev').Count
            [math]::Abs($dev - ($group.Count - $dev)) | Should -BeLessOrEqual 1 -Because "kind $($group.Name) is split evenly"
        }
    }

    It 'spreads the questions over many documents' {
        $sources = $answered | ForEach-Object { ($_.ExpectedSource -split '[;|]')[0] }
        @($sources | Sort-Object -Unique).Count | Should -BeGreaterOrEqual ([int]($answered.Count * 0.6))
        ($sources | Group-Object | Measure-Object Count -Maximum).Maximum | Should -BeLessOrEqual 6
    }

    It 'names only sources that its corpus builder writes' {
        $written = @(& (Join-Path $Directory 'Build-Corpus.ps1') -ListOnly)
        $written.Count | Should -BeGreaterThan 300 -Because 'the corpus includes distractor documents, not only the targets'
        $missing = foreach ($row in $answered) {
            foreach ($expected in $row.ExpectedSource -split '[;|]') {
                if (-not (Test-SourceMatch $expected $written)) { $expected }
            }
        }
        $missing | Should -BeNullOrEmpty
    }
}

Describe 'Update-EvalSplit' {
    It 'keeps existing splits and balances new rows within their kind' {
        $csv = Join-Path ([System.IO.Path]::GetTempPath()) "ckllm-evalsplit-$([guid]::NewGuid().ToString('N')).csv"
        try {
            @(
                [pscustomobject]@{ Question = 'old one'; ExpectedSource = 'a.md'; kind = 'paraphrase'; split = 'test' }
                [pscustomobject]@{ Question = 'old two'; ExpectedSource = 'b.md'; kind = 'paraphrase'; split = 'test' }
                [pscustomobject]@{ Question = 'new one'; ExpectedSource = 'c.md'; kind = 'paraphrase'; split = '' }
                [pscustomobject]@{ Question = 'new two'; ExpectedSource = 'd.md'; kind = 'paraphrase'; split = '' }
                [pscustomobject]@{ Question = 'nothing'; ExpectedSource = ''; kind = 'no-answer'; split = '' }
                [pscustomobject]@{ Question = 'nothing else'; ExpectedSource = ''; kind = 'no-answer'; split = '' }
            ) | Export-Csv -LiteralPath $csv -NoTypeInformation
            & (Join-Path $evalRoot 'Update-EvalSplit.ps1') -Path $csv
            $rows = Import-Csv $csv
            $rows.split[0..3] | Should -Be @('test', 'test', 'dev', 'dev')
            @($rows[4..5].split | Sort-Object) | Should -Be @('dev', 'test')
            (Get-Content -LiteralPath $csv -TotalCount 1) | Should -BeExactly 'Question,ExpectedSource,kind,split'
        } finally { Remove-Item -LiteralPath $csv -ErrorAction Ignore }
    }
}

Describe 'Corpus builders on generated input' {
    BeforeAll {
        $script:work = Join-Path ([System.IO.Path]::GetTempPath()) "ckllm-evalcorpus-$([guid]::NewGuid().ToString('N'))"
        New-Item -ItemType Directory -Path $work | Out-Null

        function Write-GzipText([string] $Path, [string] $Text) {
            New-Item -ItemType Directory -Path (Split-Path $Path) -Force | Out-Null
            $file = [System.IO.File]::Create($Path)
            try {
                $gzip = [System.IO.Compression.GZipStream]::new($file, [System.IO.Compression.CompressionLevel]::Optimal)
                $bytes = [System.Text.Encoding]::UTF8.GetBytes($Text)
                $gzip.Write($bytes, 0, $bytes.Length)
                $gzip.Dispose()
            } finally { $file.Dispose() }
        }
    }

    AfterAll { Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction Ignore }

    It 'debian-docs turns HTML into headed text without navigation and decompresses READMEs' {
        $docs = Join-Path $work 'doc'
        New-Item -ItemType Directory -Path (Join-Path $docs 'tool/html') -Force | Out-Null
        Set-Content -LiteralPath (Join-Path $docs 'tool/html/guide.html') -Value @'
<html><head><title>Tool &amp; Guide</title><style>p { color: red }</style></head><body>
<nav><ul><li>Home</li><li>Other page</li></ul></nav>
<h2>Getting started</h2><p>Run the tool &lt;twice&gt;.</p><ul><li>first step</li></ul>
<script>var hidden = 1;</script></body></html>
'@
        Write-GzipText (Join-Path $docs 'tool/README.Debian.gz') "Packaging notes`r`n`r`n`r`n`r`nfor Debian   "
        New-Item -ItemType SymbolicLink -Path (Join-Path $docs 'alias') -Target (Join-Path $docs 'tool') | Out-Null

        $script = Join-Path $evalRoot 'debian-docs/Build-Corpus.ps1'
        $list = @(& $script -ListOnly -DocRoot $docs -ManifestPath '')
        $list | Sort-Object | Should -Be @('tool/html/guide.md', 'tool/README.Debian.txt')

        $out = Join-Path $work 'docs-out'
        & $script -OutputPath $out -DocRoot $docs -ManifestPath '' | Out-Null
        $guide = Get-Content -Raw (Join-Path $out 'tool/html/guide.md')
        $guide | Should -Match '^# Tool & Guide'
        $guide | Should -Match '(?m)^## Getting started$'
        $guide | Should -Match 'Run the tool <twice>\.'
        $guide | Should -Match '(?m)^- first step$'
        $guide | Should -Not -Match 'Other page|hidden|color'
        Get-Content -Raw (Join-Path $out 'tool/README.Debian.txt') | Should -BeExactly "Packaging notes`n`nfor Debian`n"
    }

    It 'takes only the files listed in the manifest and warns about listed files that are missing' {
        $docs = Join-Path $work 'doc-manifest'
        New-Item -ItemType Directory -Path (Join-Path $docs 'a'), (Join-Path $docs 'late') -Force | Out-Null
        Set-Content -LiteralPath (Join-Path $docs 'a/README') -Value 'fresh image'
        Set-Content -LiteralPath (Join-Path $docs 'late/README') -Value 'installed later'
        $manifest = Join-Path $work 'manifest.txt'
        Set-Content -LiteralPath $manifest -Value 'a/README.txt', 'gone/README.txt'
        $list = @(& (Join-Path $evalRoot 'debian-docs/Build-Corpus.ps1') -ListOnly -DocRoot $docs -ManifestPath $manifest -WarningVariable warnings -WarningAction SilentlyContinue)
        $list | Should -Be @('a/README.txt')
        "$warnings" | Should -Match 'gone/README\.txt'
    }

    It 'man-admin renders real pages of sections 5, 7 and 8 and skips redirects, links and other sections' {
        $man = Join-Path $work 'man'
        $page = ".TH DEMO 5`n.SH NAME`ndemo \- a demonstration file`n.SH DESCRIPTION`nThe demo file holds settings.`n"
        Write-GzipText (Join-Path $man 'man5/demo.5.gz') $page
        Write-GzipText (Join-Path $man 'man7/redirect.7.gz') ".so man5/demo.5`n"
        Write-GzipText (Join-Path $man 'man1/tool.1.gz') $page
        New-Item -ItemType Directory -Path (Join-Path $man 'man8') | Out-Null
        New-Item -ItemType SymbolicLink -Path (Join-Path $man 'man8/alias.8.gz') -Target (Join-Path $man 'man5/demo.5.gz') | Out-Null

        $script = Join-Path $evalRoot 'man-admin/Build-Corpus.ps1'
        @(& $script -ListOnly -ManRoot $man -ManifestPath '') | Should -Be @('man5/demo.5.txt')
        $out = Join-Path $work 'man-out'
        & $script -OutputPath $out -ManRoot $man -ManifestPath '' | Out-Null
        $text = Get-Content -Raw (Join-Path $out 'man5/demo.5.txt')
        $text | Should -Match 'demo - a demonstration file'
        $text | Should -Match 'The demo file holds settings\.'
    }

    It 'dotnet-api writes one page per type with its members as sections, overloads with the same docs merged' {
        $ref = Join-Path $work 'ref'
        New-Item -ItemType Directory -Path $ref | Out-Null
        Set-Content -LiteralPath (Join-Path $ref 'Demo.xml') -Value @'
<?xml version="1.0" encoding="utf-8"?>
<doc><assembly><name>Demo</name></assembly><members>
<member name="T:Demo.Shapes.Box`1"><summary>Holds one <typeparamref name="T" /> value, see <see cref="T:Demo.Shapes.Crate" />.</summary></member>
<member name="M:Demo.Shapes.Box`1.#ctor(`0)"><summary>Creates a box.</summary><param name="value">The content.</param></member>
<member name="M:Demo.Shapes.Box`1.Open(System.Int32)"><summary>Opens the lid.</summary><exception cref="T:System.InvalidOperationException">The box is <see langword="null" />.</exception></member>
<member name="M:Demo.Shapes.Box`1.Open(System.String)"><summary>Opens the lid.</summary><exception cref="T:System.InvalidOperationException">The box is <see langword="null" />.</exception></member>
<member name="P:Demo.Shapes.Box`1.Size"><summary>Gets the size.</summary><value>Size in litres.</value></member>
<member name="T:Demo.Shapes.Crate"><summary>A crate.</summary></member>
<member name="T:Demo.Other.Thing"><summary>Not selected.</summary></member>
</members></doc>
'@
        $script = Join-Path $evalRoot 'dotnet-api/Build-Corpus.ps1'
        @(& $script -ListOnly -ReferencePath $ref -Namespace 'Demo.Shapes') | Should -Be @('Demo.Shapes/Demo.Shapes.Box-1.md', 'Demo.Shapes/Demo.Shapes.Crate.md')
        $out = Join-Path $work 'ref-out'
        & $script -OutputPath $out -ReferencePath $ref -Namespace 'Demo.Shapes' | Out-Null
        $box = Get-Content -Raw (Join-Path $out 'Demo.Shapes/Demo.Shapes.Box-1.md')
        $box | Should -Match '^# Demo\.Shapes\.Box<T>'
        $box | Should -Match 'Holds one T value, see Crate\.'
        $box | Should -Match '(?m)^## Constructor Box\(T0\)$'
        $box | Should -Match '- Parameter value: The content\.'
        $box | Should -Match '(?m)^## Method Open\(Int32\) / Open\(String\)$'
        $box | Should -Match '- Throws InvalidOperationException: The box is null\.'
        $box | Should -Match '(?m)^## Property Size$'
        $box | Should -Match '- Returns: Size in litres\.'
    }
}
