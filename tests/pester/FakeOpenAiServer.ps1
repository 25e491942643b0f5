# A scripted OpenAI-compatible server for the remote-model Pester tests, run in its own pwsh process
# (Start-CkFakeOpenAi in Remote.TestHelpers.ps1): GET /v1/models; POST /v1/chat/completions and /v1/completions stream
# "Hello from fake" in three pieces. A wrong key gets 401 (with the key it received echoed, as some servers do);
# a last message containing CUT gets one piece and then the process exits, like a server killed mid-answer.
param([int] $Port, [string] $ApiKey, [string] $Model = 'fake-model')
$ErrorActionPreference = 'Stop'
$listener = [System.Net.HttpListener]::new()
$listener.Prefixes.Add("http://127.0.0.1:$Port/")
$listener.Start()

function Send-Json($Context, [int] $Status, $Body) {
    $bytes = [Text.Encoding]::UTF8.GetBytes(($Body | ConvertTo-Json -Depth 10 -Compress))
    $Context.Response.StatusCode = $Status
    $Context.Response.ContentType = 'application/json'
    $Context.Response.OutputStream.Write($bytes, 0, $bytes.Length)
    $Context.Response.Close()
}

function Send-Event($Context, [string] $Json) {
    $bytes = [Text.Encoding]::UTF8.GetBytes("data: $Json`n`n")
    $Context.Response.OutputStream.Write($bytes, 0, $bytes.Length)
    $Context.Response.OutputStream.Flush()
}

function Get-Chunk([bool] $Chat, [string] $Text, $Finish) {
    $choice = if ($Chat) { @{ index = 0; delta = @{ content = $Text }; finish_reason = $Finish } } else { @{ index = 0; text = $Text; finish_reason = $Finish } }
    @{ id = 'x'; object = 'chunk'; created = 0; model = $Model; choices = @($choice) } | ConvertTo-Json -Depth 10 -Compress
}

function Invoke-Request($context) {
    $path = $context.Request.Url.AbsolutePath
    $body = if ($context.Request.HasEntityBody) { [IO.StreamReader]::new($context.Request.InputStream).ReadToEnd() | ConvertFrom-Json } else { $null }
    $auth = $context.Request.Headers['Authorization']
    if ($ApiKey -and $auth -ne "Bearer $ApiKey") {
        Send-Json $context 401 @{ error = @{ message = "Incorrect API key provided: $($auth -replace '^Bearer ', '')"; type = 'invalid_request_error' } }
        return
    }
    if ($path -eq '/v1/models') {
        Send-Json $context 200 @{ object = 'list'; data = @(@{ id = $Model; object = 'model'; owned_by = 'test'; context_length = 4096 }) }
        return
    }
    if ($path -notin '/v1/chat/completions', '/v1/completions') {
        Send-Json $context 404 @{ error = @{ message = "no route $path" } }
        return
    }
    if ($body.model -ne $Model) {
        Send-Json $context 404 @{ error = @{ message = "The model '$($body.model)' does not exist" } }
        return
    }
    $chat = $path -eq '/v1/chat/completions'
    $last = if ($chat) { $body.messages[-1].content } else { $body.prompt }
    $context.Response.ContentType = 'text/event-stream'
    $context.Response.SendChunked = $true
    if ($last -match 'CUT') {
        Send-Event $context (Get-Chunk $chat 'Partial ' $null)
        [Environment]::Exit(0)
    }
    foreach ($piece in 'Hello ', 'from ', 'fake') { Send-Event $context (Get-Chunk $chat $piece $null) }
    Send-Event $context (Get-Chunk $chat '' 'stop')
    Send-Event $context (@{ id = 'x'; object = 'chunk'; created = 0; model = $Model; choices = @(); usage = @{ prompt_tokens = 5; completion_tokens = 3; total_tokens = 8 } } | ConvertTo-Json -Depth 10 -Compress)
    $bytes = [Text.Encoding]::UTF8.GetBytes("data: [DONE]`n`n")
    $context.Response.OutputStream.Write($bytes, 0, $bytes.Length)
    $context.Response.Close()
}

while ($listener.IsListening) {
    $context = $listener.GetContext()
    # A client that gave up (a readiness probe timing out on a loaded machine) must not stop the server.
    try { Invoke-Request $context } catch { Write-Warning "Request failed: $_" }
}
