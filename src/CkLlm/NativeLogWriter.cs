using System.Management.Automation;
using CkLlm.Engine.Model;

namespace CkLlm;

/// <summary>Moves llama.cpp's queued log lines to the cmdlet's Verbose/Debug streams (pipeline thread only).</summary>
internal static class NativeLogWriter
{
    public static void WriteNativeLog(this Cmdlet cmdlet)
    {
        foreach (var entry in NativeBackend.DrainLog())
        {
            if (entry.Level == NativeLogLevel.Debug) cmdlet.WriteDebug("llama.cpp: " + entry.Text);
            else cmdlet.WriteVerbose($"llama.cpp {entry.Level.ToString().ToLowerInvariant()}: {entry.Text}");
        }
    }
}
