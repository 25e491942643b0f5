# Shared by the remote-model Pester files: OpenAI-compatible servers in their own pwsh processes.

# A free loopback TCP port.
function Get-CkFreePort {
    $probe = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
    $probe.Start()
    try { $probe.LocalEndpoint.Port } finally { $probe.Stop() }
}

# Starts a pwsh process running $Script with $Arguments; pwsh may run as a dotnet tool (the host is dotnet).
# Its standard error goes to a file named by the returned process's ErrorLog note property.
function Start-CkChildPwsh([string] $Script, [string[]] $Arguments) {
    $exe = [Environment]::ProcessPath
    $pre = @(if ((Split-Path $exe -Leaf) -like 'dotnet*') { Join-Path $PSHOME 'pwsh.dll' })
    $log = Join-Path ([IO.Path]::GetTempPath()) "ckllm-child-$([guid]::NewGuid().ToString('N')).err"
    $process = Start-Process -FilePath $exe -ArgumentList (@($pre) + @('-NoProfile', '-NonInteractive', '-File', $Script) + @($Arguments)) `
        -RedirectStandardError $log -PassThru
    $process | Add-Member -NotePropertyName ErrorLog -NotePropertyValue $log -PassThru
}

# Waits until GET $Uri answers (any status), or throws after $TimeoutSec.
function Wait-CkHttp([string] $Uri, [int] $TimeoutSec = 120, $Process) {
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSec)
    while ([DateTime]::UtcNow -lt $deadline) {
        if ($Process -and $Process.HasExited) {
            throw "The server process exited ($($Process.ExitCode)) before answering ${Uri}: $(Get-Content $Process.ErrorLog -Raw -ErrorAction Ignore)"
        }
        try { $null = Invoke-WebRequest $Uri -SkipHttpErrorCheck -TimeoutSec 20; return }
        catch { Start-Sleep -Milliseconds 300 }
    }
    throw "Nothing answered $Uri within $TimeoutSec s."
}

# The scripted fake server (FakeOpenAiServer.ps1) on a free port: returns its process and endpoint.
function Start-CkFakeOpenAi([string] $ApiKey, [string] $Model = 'fake-model') {
    $port = Get-CkFreePort
    $arguments = @('-Port', $port, '-Model', $Model) + @(if ($ApiKey) { '-ApiKey', $ApiKey })
    $process = Start-CkChildPwsh (Join-Path $PSScriptRoot 'FakeOpenAiServer.ps1') $arguments
    $endpoint = "http://127.0.0.1:$port"
    Wait-CkHttp "$endpoint/v1/models" -Process $process
    [pscustomobject]@{ Process = $process; Endpoint = $endpoint; Port = $port }
}

function Stop-CkServerProcess($Server) {
    if ($Server -and -not $Server.Process.HasExited) { $Server.Process.Kill(); $Server.Process.WaitForExit(10000) | Out-Null }
}
