# Shared helpers for the knowledge-base Pester tests (dot-source in BeforeAll).

function New-KbTestDirectory {
    $dir = Join-Path ([IO.Path]::GetTempPath()) ("ckllm-kbtest-" + [guid]::NewGuid().ToString('N'))
    New-Item -ItemType Directory -Path $dir | Out-Null
    $dir
}

function Close-KbTestKnowledgeBase([string] $Directory) {
    # Forget the cached instance so the next cmdlet really reopens the directory.
    $null = (Get-CkSession).CloseKnowledgeBase($Directory)
}

function Remove-KbTestDirectory([string] $Directory) {
    if ($Directory -and (Test-Path -LiteralPath $Directory)) {
        Close-KbTestKnowledgeBase (Join-Path $Directory 'kb')
        Remove-Item -LiteralPath $Directory -Recurse -Force -ErrorAction SilentlyContinue
    }
}

# Starts a separate pwsh process (same pwsh build, module imported) running $Script; returns the Process.
function Start-KbChildPwsh([string] $Script, [string] $LogPath) {
    $pwshDll = Join-Path ([IO.Path]::GetDirectoryName([System.Management.Automation.PSObject].Assembly.Location)) 'pwsh.dll'
    $full = "`$ErrorActionPreference='Stop'; `$ProgressPreference='SilentlyContinue'; Import-Module '$env:CKLLM_MODULE'; $Script"
    $encoded = [Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes($full))
    $psi = [System.Diagnostics.ProcessStartInfo]::new([Environment]::ProcessPath)
    foreach ($a in @($pwshDll, '-NoProfile', '-NonInteractive', '-EncodedCommand', $encoded)) { $psi.ArgumentList.Add($a) }
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $psi.UseShellExecute = $false
    $p = [System.Diagnostics.Process]::Start($psi)
    $p
}

function New-KbTestCorpus([string] $Directory, [int] $Count, [int] $ParagraphsPerFile = 3) {
    $topics = 'harbours', 'glaciers', 'violins', 'sourdough', 'comets', 'beehives', 'lighthouses', 'volcanoes', 'orchards', 'caravans'
    New-Item -ItemType Directory -Force -Path $Directory | Out-Null
    foreach ($i in 1..$Count) {
        $topic = $topics[$i % $topics.Count]
        $paras = foreach ($p in 1..$ParagraphsPerFile) {
            "## Part $p`n`n" + ((1..12 | ForEach-Object { "Document $i paragraph $p sentence $_ is about $topic and their history." }) -join ' ')
        }
        Set-Content -LiteralPath (Join-Path $Directory ("doc{0:D3}.md" -f $i)) -Value ("# Notes $i on $topic`n`n" + ($paras -join "`n`n"))
    }
}
