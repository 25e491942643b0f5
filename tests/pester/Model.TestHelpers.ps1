# Shared by the model/completion Pester files: a temp folder with generated Tiny models.
function New-CkTestModelFolder {
    $dir = Join-Path ([IO.Path]::GetTempPath()) "ckllm-model-tests-$([guid]::NewGuid().ToString('N'))"
    New-Item -ItemType Directory -Path $dir | Out-Null
    $null = New-CkModel -Path (Join-Path $dir 'tiny.gguf') -Seed 1
    $null = New-CkModel -Path (Join-Path $dir 'tiny-chat.gguf') -Seed 1 -ChatTemplate ChatML
    $dir
}

# Unloads every model so each file starts from an empty session.
function Clear-CkTestModels { Get-CkModel | Remove-CkModel -Confirm:$false }

# Runs a script in a fresh pwsh process and returns its output lines (stdout+stderr) and exit code.
function Invoke-CkChildPwsh([string] $Script) {
    $file = Join-Path ([IO.Path]::GetTempPath()) "ckllm-child-$([guid]::NewGuid().ToString('N')).ps1"
    Set-Content -Path $file -Value $Script
    try {
        # pwsh may run as a dotnet tool (the host process is dotnet): start the same pwsh.dll the same way.
        $host_ = [Environment]::ProcessPath
        $arguments = @(if ((Split-Path $host_ -Leaf) -like 'dotnet*') { Join-Path $PSHOME 'pwsh.dll' })
        $output = & $host_ @arguments -NoProfile -NonInteractive -File $file 2>&1 | ForEach-Object { "$_" }
        [pscustomobject]@{ Output = $output; ExitCode = $LASTEXITCODE }
    }
    finally { Remove-Item $file -ErrorAction Ignore }
}
