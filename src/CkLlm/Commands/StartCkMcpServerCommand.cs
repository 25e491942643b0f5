using System.Management.Automation;
using CkLlm.Engine.Inference;
using CkLlm.Engine.Serving.Mcp;

namespace CkLlm.Commands;

/// <summary>
/// Serves knowledge bases to MCP clients (editors, agents) over stdio: the tools search_knowledge, ask_knowledge and
/// list_knowledge_sources. Runs until the client closes stdin or Ctrl+C.
/// </summary>
[Cmdlet(VerbsLifecycle.Start, "CkMcpServer")]
[OutputType(typeof(void))]
public sealed class StartCkMcpServerCommand : CkCmdlet
{
    /// <summary>Knowledge base directories to serve; default: the session's current one (or ~/.ckllm/knowledge).</summary>
    [Parameter(Position = 0)]
    [ValidateNotNullOrEmpty]
    public string[]? KnowledgeBase { get; set; }

    /// <summary>The model ask_knowledge answers with: a loaded model's name or object, or a GGUF file to load.</summary>
    [Parameter]
    [ValidateNotNull]
    public object? Model { get; set; }

    protected override void EndProcessing()
    {
        // Claimed first, before any model loads or knowledge base opens: from here on only the protocol reaches stdout,
        // and this command's own errors, warnings and verbose text go to stderr with everything else.
        StandardOutputClaim stdout;
        try { stdout = StandardOutputClaim.Claim(); }
        catch (Exception e) when (e is InvalidOperationException or IOException or PlatformNotSupportedException)
        {
            ThrowInputError(e, "StdoutUnavailable", ErrorCategory.ResourceUnavailable, null);
            return;
        }
        using (stdout)
        {
            var knowledgeBases = (KnowledgeBase ?? [null!]).Select(dir => OpenKnowledgeBase(dir, mustExist: true)).ToArray();
            var model = ModelResolver();
            if (model is null) return;
            var tools = new KnowledgeTools(KnowledgeTools.NameKnowledgeBases(knowledgeBases), model);
            foreach (var served in tools.KnowledgeBases)
                WriteVerbose($"Serving knowledge base '{served.Name}' ({served.KnowledgeBase.Directory}) over MCP stdio.");
            Serve(McpKnowledgeServer.RunStdioAsync(tools, stdout, Cancellation));
        }
    }

    /// <summary>How ask_knowledge finds its model: the one -Model named (loading a GGUF file if it names one), else the
    /// session's current model at each call. Null after writing the error when -Model names nothing usable.</summary>
    private Func<IChatModel>? ModelResolver()
    {
        if (Model is null) return () => SessionHost.Session.GetModel();
        var value = Model is PSObject ps ? ps.BaseObject : Model;
        IChatModel? model = null;
        if (value is string name && !SessionHost.Session.TryGetModel(name, out _) && File.Exists(ResolvePath(name)))
        {
            var loaded = TryEngine(() => model = SessionHost.Session.ImportModel(ResolvePath(name)), name);
            this.WriteNativeLog();
            if (!loaded) return null;
        }
        else
        {
            model = ResolveModel(Model);
        }
        if (model is null) return null;
        WriteVerbose($"ask_knowledge answers with model '{model.Name}'.");
        return () => model;
    }

    /// <summary>Waits on the pipeline thread (where Verbose/Debug may be written) until the server ends, moving
    /// llama.cpp's log to those streams meanwhile; Ctrl+C cancels the server through <see cref="CkCmdlet.Cancellation"/>.</summary>
    private void Serve(Task server)
    {
        while (Task.WaitAny([server], TimeSpan.FromMilliseconds(250)) < 0) this.WriteNativeLog();
        this.WriteNativeLog();
        server.GetAwaiter().GetResult();
    }
}
