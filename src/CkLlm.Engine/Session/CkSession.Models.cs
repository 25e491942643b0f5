using CkLlm.Engine.Inference;
using CkLlm.Engine.Model;

namespace CkLlm.Engine.Session;

/// <summary>Loaded models by name (case-insensitive) and the current model. Any <see cref="IChatModel"/> backend.</summary>
public sealed partial class CkSession
{
    public const string NoModelMessage = "No model is loaded. Run Import-CkModel first.";

    private readonly object _modelGate = new();
    private readonly Dictionary<string, RegisteredModel> _models = new(StringComparer.OrdinalIgnoreCase);
    private long _registrations;
    private string? _currentModelName;

    /// <summary>A model and when it was registered (its place in load order).</summary>
    private sealed record RegisteredModel(IChatModel Model, long Order);

    /// <summary>Loaded models in load order.</summary>
    public IReadOnlyList<IChatModel> Models
    {
        get { lock (_modelGate) return _models.Values.OrderBy(m => m.Order).Select(m => m.Model).ToArray(); }
    }

    /// <summary>The model completions use when none is named; null when none is loaded.</summary>
    public IChatModel? CurrentModel
    {
        get { lock (_modelGate) return _currentModelName is null ? null : _models.GetValueOrDefault(_currentModelName)?.Model; }
    }

    /// <summary>Validates, loads and registers a llama.cpp model, and makes it current. A model of the same name is replaced (and freed).</summary>
    public LoadedModel ImportModel(string path, ModelLoadOptions? options = null)
    {
        var model = LoadedModel.Load(path, options);
        AddModel(model);
        return model;
    }

    /// <summary>Registers a model of any backend and makes it current; a model of the same name is replaced and freed.</summary>
    public void AddModel(IChatModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        RegisteredModel? replaced;
        lock (_modelGate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _models.Remove(model.Name, out replaced);
            _models[model.Name] = new RegisteredModel(model, ++_registrations);
            _currentModelName = model.Name;
        }
        if (replaced is not null && !ReferenceEquals(replaced.Model, model)) replaced.Model.Dispose();
    }

    /// <summary>The named model, or the current one when <paramref name="name"/> is null or empty.</summary>
    /// <exception cref="ModelNotLoadedException">No model is loaded, or none has that name.</exception>
    public IChatModel GetModel(string? name = null)
    {
        lock (_modelGate)
        {
            if (string.IsNullOrEmpty(name))
                return (_currentModelName is null ? null : _models.GetValueOrDefault(_currentModelName)?.Model)
                    ?? throw new ModelNotLoadedException(NoModelMessage);
            if (_models.TryGetValue(name, out var registered)) return registered.Model;
            if (_models.Count == 0) throw new ModelNotLoadedException(NoModelMessage);
            throw new ModelNotLoadedException($"No model named '{name}' is loaded. Loaded: {string.Join(", ", _models.Keys)}.");
        }
    }

    public bool TryGetModel(string name, out IChatModel? model)
    {
        lock (_modelGate)
        {
            model = _models.GetValueOrDefault(name)?.Model;
            return model is not null;
        }
    }

    /// <summary>Unregisters and disposes (frees) the named model; returns false when none has that name.</summary>
    public bool RemoveModel(string name)
    {
        RegisteredModel? removed;
        lock (_modelGate)
        {
            if (!_models.Remove(name, out removed)) return false;
            ForgetCurrentLocked(removed.Model.Name);
        }
        removed.Model.Dispose();
        return true;
    }

    /// <summary>
    /// Unregisters <paramref name="model"/> if it is the instance registered under its name (a newer model of the same
    /// name is left alone), and disposes it either way. Returns whether it was registered.
    /// </summary>
    public bool RemoveModel(IChatModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var registered = false;
        lock (_modelGate)
        {
            if (_models.TryGetValue(model.Name, out var current) && ReferenceEquals(current.Model, model))
            {
                _models.Remove(model.Name);
                registered = true;
                ForgetCurrentLocked(model.Name);
            }
        }
        model.Dispose();
        return registered;
    }

    /// <summary>After removing <paramref name="name"/>: the most recently loaded model left becomes current.</summary>
    private void ForgetCurrentLocked(string name)
    {
        if (string.Equals(_currentModelName, name, StringComparison.OrdinalIgnoreCase))
            _currentModelName = _models.Values.OrderByDescending(m => m.Order).FirstOrDefault()?.Model.Name;
    }

    /// <summary>Makes a loaded model current.</summary>
    public void SetCurrentModel(string name)
    {
        lock (_modelGate)
        {
            if (!_models.TryGetValue(name, out var registered)) throw new ModelNotLoadedException($"No model named '{name}' is loaded.");
            _currentModelName = registered.Model.Name;
        }
    }

    private void DisposeModels()
    {
        IChatModel[] models;
        lock (_modelGate)
        {
            models = _models.Values.Select(m => m.Model).ToArray();
            _models.Clear();
            _currentModelName = null;
        }
        foreach (var model in models) model.Dispose();
    }
}
