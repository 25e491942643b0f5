# Start-CkMcpServer over stdio, as editors launch it: a child pwsh started with
#   pwsh -NoProfile -Command "Import-Module CkLlm; Start-CkMcpServer -KnowledgeBase ./kb"
# driven by the official MCP TypeScript SDK (tests/clients/mcp-client.mjs) and by a raw line reader that checks every
# byte of standard output. Then the same tools at Start-CkServer's /mcp, over streamable HTTP with an API key.

BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Rag.TestHelpers.ps1')
    $script:fx = New-RagTestFixture
    # Greedy decoding of this model writes exactly the answer: the citation marker is deterministic.
    $script:fixedModel = New-FixedAnswerModel (Join-Path $fx.Root 'fixed-answer.gguf') 'Yes [1]'

    # 'Import-Module CkLlm' by name, as in an editor's configuration: the built module's parent folder goes first on
    # PSModulePath for the children.
    $script:childModulePath = (Split-Path (Split-Path $env:CKLLM_MODULE)) + [IO.Path]::PathSeparator + $env:PSModulePath
    $script:pwshExe = [Environment]::ProcessPath
    $script:pwshPre = @(if ((Split-Path -Leaf $pwshExe) -like 'dotnet*') { Join-Path $PSHOME 'pwsh.dll' })

    function script:Quote([string] $Text) { "'" + $Text.Replace("'", "''") + "'" }

    # The -Command text of a child that serves the fixture's knowledge base (and a model when asked).
    function script:Get-ServerCommand([string] $Before = '', [string] $ServerArguments = '', [string] $After = '') {
        "Import-Module CkLlm; $Before Start-CkMcpServer -KnowledgeBase $(Quote $fx.KnowledgeBase) $ServerArguments; $After"
    }

    # Runs mcp-client.mjs (the TypeScript SDK) against a stdio server started with $Command, or the transport $Spec
    # describes (streamable HTTP); returns its report.
    function script:Invoke-McpClient([string] $Command, [object[]] $Calls, [hashtable] $Spec) {
        if (-not $env:CKLLM_TEST_CLIENTS) { throw 'CKLLM_TEST_CLIENTS is not set: run the tests through ./build.ps1 -Task Test.' }
        # ES module imports resolve from the script's folder: the script runs from where npm installed the SDK.
        $script = Join-Path $env:CKLLM_TEST_CLIENTS 'mcp-client.mjs'
        Copy-Item (Join-Path $PSScriptRoot '../clients/mcp-client.mjs') $script -Force
        $specFile = Join-Path $fx.Root "mcp-spec-$([guid]::NewGuid().ToString('N')).json"
        if (-not $Spec) {
            $Spec = @{ transport = 'stdio'; command = $pwshExe; args = @($pwshPre) + @('-NoProfile', '-Command', $Command); env = @{ PSModulePath = $childModulePath } }
        }
        $Spec.calls = @($Calls)
        $Spec | ConvertTo-Json -Depth 10 | Set-Content $specFile
        Push-Location $env:CKLLM_TEST_CLIENTS
        try { $json = node $script $specFile } finally { Pop-Location }
        if ($LASTEXITCODE -ne 0) { throw "mcp-client.mjs failed (exit $LASTEXITCODE): $json" }
        $json | ConvertFrom-Json -Depth 20
    }

    # A child server with raw pipes: JSON-RPC by hand, every stdout line kept.
    function script:Start-RawServer([string] $Command) {
        # Through env --default-signal=INT: a test run started in the background of a shell ignores SIGINT, and children
        # inherit that (an editor launching the server does not); the Ctrl+C test needs the signal delivered.
        $info = [Diagnostics.ProcessStartInfo]::new('/usr/bin/env')
        foreach ($a in @('--default-signal=INT', $pwshExe) + @($pwshPre) + @('-NoProfile', '-Command', $Command)) { $info.ArgumentList.Add($a) }
        $info.RedirectStandardInput = $true
        $info.RedirectStandardOutput = $true
        $info.RedirectStandardError = $true
        $info.UseShellExecute = $false
        $info.Environment['PSModulePath'] = $childModulePath
        $process = [Diagnostics.Process]::Start($info)
        [pscustomobject]@{ Process = $process; Lines = [Collections.Generic.List[string]]::new(); Stderr = $process.StandardError.ReadToEndAsync(); NextId = 0 }
    }

    function script:Read-RawLine($Server) {
        $read = $Server.Process.StandardOutput.ReadLineAsync()
        if (-not $read.Wait([TimeSpan]::FromSeconds(120))) { throw "No line from the server in 120 s. stderr so far is not available until exit." }
        if ($null -ne $read.Result) { $Server.Lines.Add($read.Result) }
        $read.Result
    }

    function script:Send-RawRequest($Server, [string] $Method, [hashtable] $Params = @{}) {
        $id = ++$Server.NextId
        $Server.Process.StandardInput.WriteLine((@{ jsonrpc = '2.0'; id = $id; method = $Method; params = $Params } | ConvertTo-Json -Depth 10 -Compress))
        $Server.Process.StandardInput.Flush()
        while ($true) {
            $line = Read-RawLine $Server
            if ($null -eq $line) { throw "The server closed stdout before answering $Method." }
            $message = $line | ConvertFrom-Json -Depth 20
            if ($message.PSObject.Properties['id'] -and $message.id -eq $id) { return $message }
        }
    }

    function script:Initialize-RawServer($Server) {
        $init = Send-RawRequest $Server 'initialize' @{ protocolVersion = '2025-06-18'; capabilities = @{}; clientInfo = @{ name = 'pester'; version = '1' } }
        $Server.Process.StandardInput.WriteLine('{"jsonrpc":"2.0","method":"notifications/initialized"}')
        $Server.Process.StandardInput.Flush()
        $init
    }

    # Closes stdin (what MCP clients do to stop a stdio server), reads the rest of stdout, waits for the exit.
    function script:Stop-RawServer($Server) {
        $Server.Process.StandardInput.Close()
        while ($null -ne (Read-RawLine $Server)) { }
        if (-not $Server.Process.WaitForExit(60000)) { $Server.Process.Kill($true); throw 'The server did not exit within 60 s of stdin closing.' }
        $Server.Stderr.Wait(10000) | Out-Null
    }

    # Every line must be a JSON-RPC 2.0 message; returns the lines that are not.
    function script:Get-NonProtocolLines([string[]] $Lines) {
        foreach ($line in $Lines) {
            $message = try { $line | ConvertFrom-Json -Depth 20 -ErrorAction Stop } catch { $null }
            if (-not $message -or $message.jsonrpc -ne '2.0') { $line }
        }
    }
}

AfterAll {
    Remove-RagTestFixture $fx
}

Describe 'Start-CkMcpServer with the MCP TypeScript SDK over stdio' {
    BeforeAll {
        $command = Get-ServerCommand -Before "`$null = Import-CkModel $(Quote $fixedModel) -Name fixed -ContextSize 1024;" -ServerArguments '-Model fixed'
        $script:report = Invoke-McpClient $command @(
            @{ name = 'search_knowledge'; arguments = @{ query = 'Which volcano is on the island of Hawaii?'; top = 2 } }
            @{ name = 'ask_knowledge'; arguments = @{ question = 'Which volcano is on the island of Hawaii?'; top = 2; maxTokens = 16; temperature = 0 } }
            @{ name = 'list_knowledge_sources'; arguments = @{} }
            @{ name = 'search_knowledge'; arguments = @{ query = 'volcano'; knowledgeBase = 'attic' } }
        )
    }

    It 'connects, and every stdout line was a protocol message' {
        $report.connectError | Should -BeNullOrEmpty
        $report.clientErrors | Should -BeNullOrEmpty
        $report.server.name | Should -Be 'ckllm'
    }

    It 'lists the three tools with their arguments' {
        $report.tools.name | Should -Be @('search_knowledge', 'ask_knowledge', 'list_knowledge_sources')
        $search = $report.tools | Where-Object name -EQ 'search_knowledge'
        $search.inputSchema.required | Should -Be @('query')
        $search.inputSchema.properties.PSObject.Properties.Name | Should -Be @('query', 'top', 'filter', 'knowledgeBase')
        ($report.tools | Where-Object name -EQ 'ask_knowledge').inputSchema.required | Should -Be @('question')
    }

    It 'search_knowledge returns the passage with its source and line range' {
        $result = $report.results[0]
        $result.isError | Should -Not -BeTrue
        $hit = $result.structuredContent.hits[0]
        $hit.source | Should -BeLike '*volcano.md'
        $hit.lines | Should -Match '^\d+(-\d+)?$'
        $hit.text | Should -Match 'Kilauea is a shield volcano'
        @($result.structuredContent.hits).Count | Should -BeLessOrEqual 2
        ($result.content[0].text | ConvertFrom-Json).hits[0].source | Should -Be $hit.source
    }

    It 'ask_knowledge answers with the model and cites the passage it names' {
        $result = $report.results[1]
        $result.isError | Should -Not -BeTrue
        $answer = $result.structuredContent
        $answer.answer | Should -BeExactly 'Yes [1]'
        $answer.model | Should -Be 'fixed'
        $answer.citations[0].number | Should -Be 1
        $answer.citations[0].cited | Should -BeTrue
        $answer.citations[0].source | Should -BeLike '*volcano.md'
        @($answer.unknownCitations).Count | Should -Be 0
    }

    It 'list_knowledge_sources lists the knowledge base and its documents' {
        $report.results[2].structuredContent.knowledgeBases | Should -HaveCount 1
        $kb = $report.results[2].structuredContent.knowledgeBases[0]
        $kb.name | Should -Be 'kb'
        $kb.sourceCount | Should -Be 4
        ($kb.sources.source | ForEach-Object { Split-Path -Leaf $_ } | Sort-Object) | Should -Be @('bread.md', 'glaciers.md', 'violin.md', 'volcano.md')
    }

    It 'an unknown knowledge base name is a tool error naming the served ones' {
        $result = $report.results[3]
        $result.isError | Should -BeTrue
        $result.content[0].text | Should -Match "No knowledge base named 'attic' is served\. Served: kb\."
    }
}

Describe 'Start-CkMcpServer without a model' {
    It 'ask_knowledge is a tool error that says how to start the server with one; search still works' {
        $report = Invoke-McpClient (Get-ServerCommand) @(
            @{ name = 'ask_knowledge'; arguments = @{ question = 'Which volcano is on Hawaii?' } }
            @{ name = 'search_knowledge'; arguments = @{ query = 'sourdough starter' } }
        )
        $report.connectError | Should -BeNullOrEmpty
        $report.results[0].isError | Should -BeTrue
        $report.results[0].content[0].text | Should -Match 'ask_knowledge needs a chat model.*-Model'
        $report.results[1].isError | Should -Not -BeTrue
        $report.results[1].structuredContent.hits[0].source | Should -BeLike '*bread.md'
    }
}

Describe 'Start-CkMcpServer keeps stdout for the protocol' {
    BeforeAll {
        # Noise on stdout from both levels while the server runs: .NET's console writer and a native write(2) on file
        # descriptor 1, every 20 ms from another thread; plus -Verbose and -Debug (llama.cpp's log) and a model loaded
        # by the cmdlet itself. After the server, stdout must be back: the last line is a marker written there.
        $noise = @'
using System; using System.Runtime.InteropServices; using System.Threading;
public static class StdoutNoise {
    [DllImport("libc")] private static extern IntPtr write(int fd, byte[] buffer, IntPtr count);
    private static volatile bool _stop; private static Thread _thread;
    // Noise only while the server holds stdout (Console.Out replaced), so none lands before or after it.
    public static void Start() {
        var original = Console.Out;
        _thread = new Thread(() => {
            var native = System.Text.Encoding.ASCII.GetBytes("native-noise\n");
            while (!_stop && ReferenceEquals(Console.Out, original)) Thread.Sleep(5);
            while (!_stop && !ReferenceEquals(Console.Out, original)) { Console.WriteLine("managed-noise"); write(1, native, (IntPtr)native.Length); Thread.Sleep(20); }
        });
        _thread.IsBackground = true; _thread.Start();
    }
    public static void Stop() { _stop = true; _thread.Join(); }
}
'@
        $before = "Add-Type -TypeDefinition $(Quote $noise); `$DebugPreference = 'Continue'; [StdoutNoise]::Start();"
        $command = Get-ServerCommand -Before $before -ServerArguments "-Model $(Quote $fixedModel) -Verbose" `
            -After "[StdoutNoise]::Stop(); 'stdout-restored'"
        $script:server = Start-RawServer $command
        $script:init = Initialize-RawServer $server
        $script:tools = Send-RawRequest $server 'tools/list'
        $script:ask = Send-RawRequest $server 'tools/call' @{ name = 'ask_knowledge'; arguments = @{ question = 'Which volcano is on Hawaii?'; maxTokens = 8; top = 1 } }
        Start-Sleep -Milliseconds 300 # more noise while serving
        Stop-RawServer $server
        $script:stderr = $server.Stderr.Result
    }

    It 'ends with exit code 0 when the client closes stdin' {
        $server.Process.ExitCode | Should -Be 0
    }

    It 'wrote only JSON-RPC messages on stdout while serving, then gave stdout back' {
        $server.Lines[-1] | Should -BeExactly 'stdout-restored'
        $protocol = $server.Lines | Select-Object -SkipLast 1
        @($protocol).Count | Should -BeGreaterOrEqual 3
        Get-NonProtocolLines $protocol | Should -BeNullOrEmpty
        $ask.PSObject.Properties.Name | Should -Contain 'result' # an answer or a tool error, as a protocol message
    }

    It 'sent the managed and native noise, verbose text and llama.cpp log to stderr instead' {
        $stderr | Should -Match 'managed-noise'
        $stderr | Should -Match 'native-noise'
        $stderr | Should -Match 'VERBOSE: Serving knowledge base'
        $stderr | Should -Match 'llama\.cpp'
    }
}

Describe 'Start-CkMcpServer beside other modules and their Microsoft.Extensions versions' {
    It 'serves after Microsoft.Extensions.Logging.Abstractions 8.0 was loaded first: the SDK and its 10.x dependencies live in the engine context' {
        $logging = Join-Path $env:CKLLM_TEST_PACKAGES 'microsoft.extensions.logging.abstractions/8.0.0/lib/net8.0/Microsoft.Extensions.Logging.Abstractions.dll'
        Test-Path $logging | Should -BeTrue
        $report = "`$mcp = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { `$_.GetName().Name -eq 'ModelContextProtocol.Core' }; " +
            "[Console]::Error.WriteLine('MCPCONTEXT=' + [Runtime.Loader.AssemblyLoadContext]::GetLoadContext(`$mcp).Name)"
        $server = Start-RawServer (Get-ServerCommand -Before "Add-Type -Path $(Quote $logging);" -After $report)
        $null = Initialize-RawServer $server
        $search = Send-RawRequest $server 'tools/call' @{ name = 'search_knowledge'; arguments = @{ query = 'sourdough starter' } }
        Stop-RawServer $server
        $search.result.structuredContent.hits[0].source | Should -BeLike '*bread.md'
        $server.Process.ExitCode | Should -Be 0
        $server.Stderr.Result | Should -Match 'MCPCONTEXT=CkLlm\.Engine'
    }
}

Describe 'Start-CkMcpServer and Ctrl+C' {
    It 'stops on SIGINT while waiting for a request, writing nothing but protocol to stdout' {
        $server = Start-RawServer (Get-ServerCommand -After "'not-reached'")
        $null = Initialize-RawServer $server
        & kill -s INT $server.Process.Id
        $server.Process.WaitForExit(60000) | Should -BeTrue -Because 'Ctrl+C stops the server'
        while ($null -ne (Read-RawLine $server)) { }
        Get-NonProtocolLines $server.Lines | Should -BeNullOrEmpty
        $server.Process.ExitCode | Should -Not -Be 0 -Because 'a stopped pipeline ends the -Command script'
    }
}

Describe 'Start-CkMcpServer input errors' {
    It 'a path without a knowledge base is KnowledgeBaseNotFound and stdout is given back' {
        $missing = Join-Path $fx.Root 'no-such-kb'
        { Start-CkMcpServer -KnowledgeBase $missing } | Should -Throw -ErrorId 'KnowledgeBaseNotFound,CkLlm.Commands.StartCkMcpServerCommand'
        Test-Path $missing | Should -BeFalse
        # A second claim works only if the first was released.
        { Start-CkMcpServer -KnowledgeBase $missing } | Should -Throw -ErrorId 'KnowledgeBaseNotFound,CkLlm.Commands.StartCkMcpServerCommand'
    }

    It 'a -Model that is neither a loaded model nor a file is NoModelLoaded and the server does not start' {
        $errors = $null
        Start-CkMcpServer -KnowledgeBase $fx.KnowledgeBase -Model 'no-such-model' -ErrorVariable errors -ErrorAction SilentlyContinue
        $errors[0].FullyQualifiedErrorId | Should -Be 'NoModelLoaded,CkLlm.Commands.StartCkMcpServerCommand'
    }
}

Describe 'Start-CkServer serves the same tools over streamable HTTP at /mcp' {
    BeforeAll {
        # ask_knowledge over HTTP answers with the session's current model, as the server's rag/ models do.
        $null = Import-CkModel $fixedModel -Name 'fixed-http' -ContextSize 1024
        $key = 'mcp-test-key'
        $script:httpServer = Start-CkServer -Port 0 -KnowledgeBase $fx.KnowledgeBase -ApiKey (ConvertTo-SecureString $key -AsPlainText -Force)
        $script:mcpUrl = $httpServer.Url.AbsoluteUri + 'mcp'
        $script:httpReport = Invoke-McpClient -Spec @{ transport = 'http'; url = $mcpUrl; apiKey = $key } -Calls @(
            @{ name = 'search_knowledge'; arguments = @{ query = 'Which volcano is on the island of Hawaii?'; top = 2 } }
            @{ name = 'ask_knowledge'; arguments = @{ question = 'Which volcano is on the island of Hawaii?'; top = 2; maxTokens = 16; temperature = 0 } }
            @{ name = 'list_knowledge_sources'; arguments = @{} }
        )
        $script:wrongKey = Invoke-McpClient -Spec @{ transport = 'http'; url = $mcpUrl; apiKey = 'not-the-key' } -Calls @()
        $script:noKey = Invoke-McpClient -Spec @{ transport = 'http'; url = $mcpUrl } -Calls @()
    }

    AfterAll {
        Stop-CkServer -ErrorAction SilentlyContinue
        Remove-CkModel -Name 'fixed-http' -Confirm:$false -ErrorAction SilentlyContinue
    }

    It 'lists the three tools to the TypeScript SDK StreamableHTTPClientTransport with the key' {
        $httpReport.connectError | Should -BeNullOrEmpty
        $httpReport.server.name | Should -Be 'ckllm'
        $httpReport.tools.name | Should -Be @('search_knowledge', 'ask_knowledge', 'list_knowledge_sources')
    }

    It 'calls search_knowledge, ask_knowledge and list_knowledge_sources' {
        $httpReport.results[0].structuredContent.hits[0].source | Should -BeLike '*volcano.md'
        $httpReport.results[1].isError | Should -Not -BeTrue
        $httpReport.results[1].structuredContent.answer | Should -BeExactly 'Yes [1]'
        $httpReport.results[1].structuredContent.citations[0].cited | Should -BeTrue
        $httpReport.results[2].structuredContent.knowledgeBases[0].sourceCount | Should -Be 4
    }

    It 'refuses a wrong or missing key with 401 before any MCP message is handled' {
        $wrongKey.connectErrorCode | Should -Be 401
        $wrongKey.connectError | Should -Match 'invalid_api_key'
        $noKey.connectErrorCode | Should -Be 401
        $noKey.connectError | Should -Match 'needs an API key'
        @($wrongKey.tools).Count | Should -Be 0
    }
}
