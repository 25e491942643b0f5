<#
.SYNOPSIS
    Bounded soak: mixed search, RAG and completion requests from several runspaces while another process adds and
    removes sources. Writes the Soak section of docs/benchmarks.md.
.DESCRIPTION
    One pwsh process imports the module, loads a generated Tiny chat model and fills a knowledge base with the
    machine's man pages; -Runspaces runspaces then send -Requests requests in total (a third each Search-CkKnowledge,
    Invoke-CkRag, Invoke-CkCompletion) while a child pwsh adds and removes sources of the same knowledge base in a loop.
    Counted: errors of any kind, and the resident set size after warm-up (the first 10% of requests) and at the end.
#>
[CmdletBinding()]
param(
    [string] $ModulePath = (Join-Path $PSScriptRoot '../../out/CkLlm/CkLlm.psd1'),
    [string] $WorkDirectory = (Join-Path ([IO.Path]::GetTempPath()) 'ckllm-soak-bench'),
    [int] $Requests = 2000,
    [int] $Runspaces = 4,
    [switch] $NoDocs
)
$ErrorActionPreference = 'Stop'
$ModulePath = (Resolve-Path $ModulePath).Path
Remove-Item -Recurse -Force $WorkDirectory -ErrorAction Ignore
$docs = Join-Path $WorkDirectory 'docs'; $churn = Join-Path $WorkDirectory 'churn'; $kb = Join-Path $WorkDirectory 'kb'
New-Item -ItemType Directory $docs, $churn | Out-Null
$env:MANWIDTH = '80'
foreach ($page in 'ls cp grep sed awk find tar ssh git make diff sort cut date df du ps kill chmod mount' -split ' ') {
    $text = & bash -c "man '$page' 2>/dev/null | col -b"
    if ($text) { Set-Content (Join-Path $docs "$page.txt") $text }
}
Import-Module $ModulePath
$model = Join-Path $WorkDirectory 'tiny-chat.gguf'
$null = New-CkModel -Path $model -Seed 1 -ChatTemplate ChatML
$null = Add-CkKnowledge -Path $docs -KnowledgeBase $kb
# The session is process-wide: every runspace sees this model.
$null = Import-CkModel $model -Name soak -ContextSize 1024
$seedSources = @(Get-CkKnowledge -KnowledgeBase $kb).Count

# The other process: adds and removes its own sources until told to stop.
$stop = Join-Path $WorkDirectory 'stop'
$writerScript = @"
`$ErrorActionPreference = 'Stop'; `$ProgressPreference = 'SilentlyContinue'
Import-Module '$ModulePath'
`$n = 0; `$errors = 0
while (-not (Test-Path '$stop')) {
    `$file = Join-Path '$churn' "churn-`$(`$n % 5).txt"
    Set-Content `$file "Churn document `$n about lighthouses, ferries and tides. Revision `$n."
    try { `$null = Add-CkKnowledge -LiteralPath `$file -KnowledgeBase '$kb'; if (`$n % 3 -eq 2) { Remove-CkKnowledge `$file -KnowledgeBase '$kb' -Confirm:`$false } }
    catch { `$errors++; [Console]::Error.WriteLine(`$_) }
    `$n++
}
"WRITES `$n ERRORS `$errors"
"@
$writerFile = Join-Path $WorkDirectory 'writer.ps1'
Set-Content $writerFile $writerScript
$pwsh = [Environment]::ProcessPath
$pre = @(if ((Split-Path $pwsh -Leaf) -like 'dotnet*') { Join-Path $PSHOME 'pwsh.dll' })
$writer = Start-Process $pwsh -ArgumentList (@($pre) + @('-NoProfile', '-NonInteractive', '-File', $writerFile)) -PassThru `
    -RedirectStandardOutput (Join-Path $WorkDirectory 'writer.out') -RedirectStandardError (Join-Path $WorkDirectory 'writer.err')

$perRunspace = [int][Math]::Ceiling($Requests / $Runspaces)
$warmup = [int][Math]::Max(1, $perRunspace / 10)
$questions = 'How do I list hidden files?', 'How do I search text in files recursively?', 'How do I compress a folder?',
    'How do I change file permissions?', 'How do I show disk usage?', 'How do I stop a process?'
$rssAfterWarmup = [System.Collections.Concurrent.ConcurrentBag[long]]::new()
$clock = [Diagnostics.Stopwatch]::StartNew()
$results = 1..$Runspaces | ForEach-Object -ThrottleLimit $Runspaces -Parallel {
    $ErrorActionPreference = 'Stop'; $ProgressPreference = 'SilentlyContinue'
    Import-Module $using:ModulePath
    $errors = 0; $done = 0; $kinds = @{ Search = 0; Rag = 0; Completion = 0 }
    for ($i = 0; $i -lt $using:perRunspace; $i++) {
        $q = ($using:questions)[($i + $_) % ($using:questions).Count]
        try {
            switch (($i + $_) % 3) {
                0 { $null = Search-CkKnowledge $q -KnowledgeBase $using:kb; $kinds.Search++ }
                1 { $null = Invoke-CkRag $q -KnowledgeBase $using:kb -Model soak -MaxTokens 8 -Temperature 0; $kinds.Rag++ }
                2 { $null = Invoke-CkCompletion $q -Model soak -MaxTokens 8 -Temperature 0; $kinds.Completion++ }
            }
        }
        catch { $errors++; [Console]::Error.WriteLine("$($_.FullyQualifiedErrorId): $_") }
        $done++
        if ($i -eq $using:warmup) { ($using:rssAfterWarmup).Add([Diagnostics.Process]::GetCurrentProcess().WorkingSet64) }
    }
    [pscustomobject]@{ Done = $done; Errors = $errors; Search = $kinds.Search; Rag = $kinds.Rag; Completion = $kinds.Completion }
}
$clock.Stop()
$rssEnd = [Diagnostics.Process]::GetCurrentProcess().WorkingSet64
New-Item -ItemType File $stop | Out-Null
$writer.WaitForExit(120000) | Out-Null
$writerLine = (Get-Content (Join-Path $WorkDirectory 'writer.out') | Select-String '^WRITES').Line
$rssWarm = ($rssAfterWarmup | Measure-Object -Maximum).Maximum
$summary = [pscustomobject]@{
    Requests = ($results | Measure-Object Done -Sum).Sum
    Errors = ($results | Measure-Object Errors -Sum).Sum
    Search = ($results | Measure-Object Search -Sum).Sum
    Rag = ($results | Measure-Object Rag -Sum).Sum
    Completion = ($results | Measure-Object Completion -Sum).Sum
    Seconds = [Math]::Round($clock.Elapsed.TotalSeconds, 1)
    RssAfterWarmupMB = [Math]::Round($rssWarm / 1MB, 1)
    RssEndMB = [Math]::Round($rssEnd / 1MB, 1)
    RssGrowthPercent = [Math]::Round(100 * ($rssEnd - $rssWarm) / $rssWarm, 1)
    Writer = $writerLine
    SeedSources = $seedSources
}
$summary | ConvertTo-Json | Set-Content (Join-Path $WorkDirectory 'soak.json')
if ($NoDocs) { return $summary }
$lines = @(
    '## Soak'
    ''
    "Written by tests/bench/Soak.Bench.ps1 on $(Get-Date -Format 'yyyy-MM-dd') ($([Environment]::ProcessorCount) cores, shared machine)."
    "$($summary.Requests) requests from $Runspaces runspaces of one pwsh (Search-CkKnowledge, Invoke-CkRag, Invoke-CkCompletion in turn;"
    "generated Tiny chat model, MiniLM knowledge base of $seedSources man pages) while another pwsh added and removed sources of the same"
    "knowledge base ($($summary.Writer))."
    ''
    '| requests | errors | search | RAG | completion | seconds | RSS after warm-up (MB) | RSS at end (MB) | growth |'
    '|---|---|---|---|---|---|---|---|---|'
    "| $($summary.Requests) | $($summary.Errors) | $($summary.Search) | $($summary.Rag) | $($summary.Completion) | $($summary.Seconds) | $($summary.RssAfterWarmupMB) | $($summary.RssEndMB) | $($summary.RssGrowthPercent)% |"
)
. (Join-Path $PSScriptRoot 'BenchDocs.ps1')
Set-BenchmarkSection 'soak' $lines
$summary
