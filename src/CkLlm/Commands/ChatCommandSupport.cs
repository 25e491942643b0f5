using System.Management.Automation;
using CkLlm.Engine.Chat;

namespace CkLlm.Commands;

/// <summary>Resolves a -Chat argument: a chat object, or the name of a chat in the session.</summary>
internal static class ChatCommandSupport
{
    /// <exception cref="ChatNotFoundException">No chat has that name.</exception>
    /// <exception cref="ArgumentException">The argument is neither a chat nor a name.</exception>
    public static ChatConversation Resolve(object? chat)
    {
        var value = chat is PSObject ps ? ps.BaseObject : chat;
        return value switch
        {
            ChatConversation conversation => conversation,
            string name => SessionHost.Session.GetChat(name),
            _ => throw new ArgumentException($"-Chat takes a chat (New-CkChat, Get-CkChat) or a chat name, not {value?.GetType().Name ?? "null"}."),
        };
    }
}
