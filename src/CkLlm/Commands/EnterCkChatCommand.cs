using System.Management.Automation;
using CkLlm.Engine.Chat;

namespace CkLlm.Commands;

/// <summary>
/// An interactive chat in the console: type messages, see replies streamed; /exit, /reset, /save &lt;file&gt;, /help.
/// Ctrl+C during a reply stops the reply, not the loop.
/// </summary>
[Cmdlet(VerbsCommon.Enter, "CkChat")]
[OutputType(typeof(void))]
public sealed class EnterCkChatCommand : ChatCommandBase
{
    private readonly List<string> _pipedLines = [];

    /// <summary>The chat to continue (an object or a name); default: a new chat on the current model.</summary>
    [Parameter(Position = 0)]
    [ValidateNotNull]
    public object? Chat { get; set; }

    /// <summary>Lines to use instead of the console (a scripted session), e.g. piped from a file.</summary>
    [Parameter(ValueFromPipeline = true)]
    [AllowEmptyString]
    public string? InputLine { get; set; }

    protected override void ProcessRecord()
    {
        if (InputLine is not null) _pipedLines.Add(InputLine);
    }

    protected override void EndProcessing()
    {
        ChatConversation? chat = null;
        if (!TryEngine(() => chat = Chat is null ? NewChatOnCurrentModel() : ChatCommandSupport.Resolve(Chat), Chat) || chat is null) return;
        var scripted = MyInvocation.ExpectingInput;
        var lines = new Queue<string>(_pipedLines);
        WriteStreamedLine($"Chat '{chat.Name}' with {chat.ModelName}. /help lists the commands; Ctrl+C stops a reply.");
        while (!Cancellation.IsCancellationRequested)
        {
            string? line;
            if (scripted) line = lines.Count > 0 ? lines.Dequeue() : null;
            else
            {
                Host.UI.Write("you> ");
                line = Host.UI.ReadLine();
            }
            if (line is null) break;
            line = line.Trim();
            if (line.Length == 0) continue;
            if (line.StartsWith('/'))
            {
                if (!RunConsoleCommand(chat, line)) break;
                continue;
            }
            using var reply = CancellationTokenSource.CreateLinkedTokenSource(Cancellation);
            using (scripted ? null : ControlCWatcher.Start(reply))
            {
                RunTurn(chat, line, WriteStreamedText, reply.Token);
            }
        }
    }

    private ChatConversation NewChatOnCurrentModel() =>
        SessionHost.Session.NewChat(SessionHost.Session.GetModel(), new ChatOptions { KnowledgeBase = GroundingKnowledgeBase() });

    /// <summary>Runs a /command; false ends the loop.</summary>
    private bool RunConsoleCommand(ChatConversation chat, string line)
    {
        var space = line.IndexOf(' ');
        var command = (space < 0 ? line : line[..space]).ToLowerInvariant();
        var argument = space < 0 ? "" : line[(space + 1)..].Trim();
        switch (command)
        {
            case "/exit" or "/quit":
                return false;
            case "/reset":
                chat.Reset();
                WriteStreamedLine("History cleared (the system message stays).");
                return true;
            case "/save" when argument.Length > 0:
                var path = ResolvePath(argument.Trim('"', '\''));
                if (TryEngine(() => ChatTranscriptFile.Save(chat.Export(), path), path)) WriteStreamedLine($"Saved to {path}.");
                return true;
            case "/help":
                WriteStreamedLine("/exit ends the chat (it stays in Get-CkChat); /reset clears the history; /save <file> writes it as JSON (Import-CkChat reads it).");
                return true;
            default:
                WriteWarning($"Unknown command '{line}'. /help lists the commands.");
                return true;
        }
    }

    private void WriteStreamedLine(string text)
    {
        WriteStreamedText(text);
        EndStreamedText();
    }

    /// <summary>
    /// While a reply runs, Ctrl+C is read as a key (not PowerShell's stop signal) and cancels only the reply; the
    /// console's normal Ctrl+C behaviour is restored after it. Does nothing when there is no interactive console.
    /// </summary>
    private sealed class ControlCWatcher : IDisposable
    {
        private readonly CancellationTokenSource _reply;
        private readonly bool _previous;
        private readonly Thread _thread;
        private volatile bool _stop;

        private ControlCWatcher(CancellationTokenSource reply)
        {
            _reply = reply;
            _previous = Console.TreatControlCAsInput;
            Console.TreatControlCAsInput = true;
            _thread = new Thread(Watch) { IsBackground = true, Name = "CkLlm Ctrl+C watcher" };
            _thread.Start();
        }

        public static ControlCWatcher? Start(CancellationTokenSource reply)
        {
            if (Console.IsInputRedirected) return null;
            try { return new ControlCWatcher(reply); }
            catch (Exception e) when (e is IOException or InvalidOperationException) { return null; }
        }

        private void Watch()
        {
            try
            {
                while (!_stop)
                {
                    if (Console.KeyAvailable)
                    {
                        var key = Console.ReadKey(intercept: true);
                        if (key.Key == ConsoleKey.C && key.Modifiers.HasFlag(ConsoleModifiers.Control)) _reply.Cancel();
                    }
                    else Thread.Sleep(30);
                }
            }
            catch (Exception e) when (e is IOException or InvalidOperationException) { }
        }

        public void Dispose()
        {
            _stop = true;
            _thread.Join();
            try { Console.TreatControlCAsInput = _previous; }
            catch (Exception e) when (e is IOException or InvalidOperationException) { }
        }
    }
}
