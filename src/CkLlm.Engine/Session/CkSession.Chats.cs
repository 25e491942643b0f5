using CkLlm.Engine.Chat;
using CkLlm.Engine.Inference;

namespace CkLlm.Engine.Session;

/// <summary>Chats by name (case-insensitive), in creation order. Every runspace sees the same chats.</summary>
public sealed partial class CkSession
{
    private readonly object _chatGate = new();
    private readonly Dictionary<string, ChatConversation> _chats = new(StringComparer.OrdinalIgnoreCase);
    private int _chatNumber;

    /// <summary>Chats in creation order.</summary>
    public IReadOnlyList<ChatConversation> Chats
    {
        get { lock (_chatGate) return _chats.Values.OrderBy(c => c.Created).ToArray(); }
    }

    /// <summary>Starts a chat on <paramref name="model"/> and registers it. Without a name it is chat1, chat2, ...</summary>
    /// <exception cref="ChatExistsException">A chat of that name exists and <paramref name="replace"/> is false.</exception>
    public ChatConversation NewChat(IChatModel model, ChatOptions? options = null, bool replace = false)
    {
        options ??= new ChatOptions();
        lock (_chatGate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var name = options.Name ?? NextChatName();
            var chat = new ChatConversation(model, options with { Name = name });
            Register(chat, replace);
            return chat;
        }
    }

    /// <summary>Registers an imported chat (see <see cref="ChatConversation.Import"/>).</summary>
    public void AddChat(ChatConversation chat, bool replace = false)
    {
        ArgumentNullException.ThrowIfNull(chat);
        lock (_chatGate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            Register(chat, replace);
        }
    }

    private void Register(ChatConversation chat, bool replace)
    {
        if (_chats.TryGetValue(chat.Name, out var existing))
        {
            if (!replace) throw new ChatExistsException(chat.Name);
            _chats.Remove(chat.Name);
            existing.Dispose();
        }
        _chats[chat.Name] = chat;
    }

    private string NextChatName()
    {
        string name;
        do name = $"chat{++_chatNumber}"; while (_chats.ContainsKey(name));
        return name;
    }

    /// <summary>The named chat.</summary>
    /// <exception cref="ChatNotFoundException">No chat has that name.</exception>
    public ChatConversation GetChat(string name)
    {
        lock (_chatGate) return _chats.GetValueOrDefault(name) ?? throw new ChatNotFoundException(name);
    }

    /// <summary>Unregisters the chat and frees its native state (a running turn is stopped first).</summary>
    public bool RemoveChat(ChatConversation chat)
    {
        ArgumentNullException.ThrowIfNull(chat);
        bool registered;
        lock (_chatGate)
        {
            registered = _chats.TryGetValue(chat.Name, out var current) && ReferenceEquals(current, chat);
            if (registered) _chats.Remove(chat.Name);
        }
        chat.Dispose();
        return registered;
    }
}

/// <summary>No chat has the requested name.</summary>
public sealed class ChatNotFoundException(string name) : KeyNotFoundException($"No chat named '{name}'. Get-CkChat lists the chats.")
{
    public string Name { get; } = name;
}

/// <summary>A chat of that name exists already.</summary>
public sealed class ChatExistsException(string name)
    : InvalidOperationException($"A chat named '{name}' exists. Remove it with Remove-CkChat, choose another -Name, or use -Force to replace it.")
{
    public string Name { get; } = name;
}
