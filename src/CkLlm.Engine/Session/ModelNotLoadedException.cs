namespace CkLlm.Engine.Session;

/// <summary>No model is loaded, or none has the requested name.</summary>
/// <remarks>An <see cref="InvalidOperationException"/> so callers written against the session's older contract still catch it.</remarks>
public sealed class ModelNotLoadedException(string message) : InvalidOperationException(message);
