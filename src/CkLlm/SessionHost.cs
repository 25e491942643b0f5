using CkLlm.Engine.Session;

namespace CkLlm;

/// <summary>
/// The cmdlets' single door to the engine's process-wide session. Every runspace that imports the module shares the
/// session, so it counts imports: the session (its models and knowledge bases) is disposed when the last runspace
/// removes the module, not when any one does.
/// </summary>
internal static class SessionHost
{
    private static readonly object Gate = new();
    private static int _imports;

    public static CkSession Session => CkSession.Current;

    public static void ModuleImported()
    {
        lock (Gate) _imports++;
    }

    public static void ModuleRemoved()
    {
        lock (Gate)
        {
            // Never below zero: a removal without a counted import (an older copy's import) must not free a session in use.
            if (_imports == 0 || --_imports > 0) return;
        }
        // Servers serve the session's models: they stop before the models are freed.
        Commands.StartCkServerCommand.StopAllServers();
        CkSession.Reset();
    }
}
