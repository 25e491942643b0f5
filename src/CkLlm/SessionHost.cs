using CkLlm.Engine.Session;

namespace CkLlm;

/// <summary>The cmdlets' single door to the engine's process-wide session.</summary>
internal static class SessionHost
{
    public static CkSession Session => CkSession.Current;

    public static void Reset() => CkSession.Reset();
}
