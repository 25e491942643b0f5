using CkLlm.Engine.Model;

namespace CkLlm.Engine.Session;

/// <summary>Loaded models by name (case-insensitive) and the current model.</summary>
public sealed partial class CkSession
{
    public const string NoModelMessage = "No model is loaded. Run Import-CkModel first.";

    private readonly object _modelGate = new();
    private readonly Dictionary<string, LoadedModel> _models = new(StringComparer.OrdinalIgnoreCase);
    private string? _currentModelName;

    /// <summary>Loaded models in load order.</summary>
    public IReadOnlyList<LoadedModel> Models
    {
        get { lock (_modelGate) return _models.Values.OrderBy(m => m.Loaded).ToArray(); }
    }

    /// <summary>The model completions use when none is named; null when none is loaded.</summary>
    public LoadedModel? CurrentModel
    {
        get { lock (_modelGate) return _currentModelName is null ? null : _models.GetValueOrDefault(_currentModelName); }
    }

    /// <summary>Validates, loads and registers a model, and makes it current. A model of the same name is replaced (and freed).</summary>
    public LoadedModel ImportModel(string path, ModelLoadOptions? options = null)
    {
        var model = LoadedModel.Load(path, options);
        AddModel(model);
        return model;
    }

    /// <summary>Registers an already loaded model and makes it current; a model of the same name is replaced and freed.</summary>
    public void AddModel(LoadedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        LoadedModel? replaced;
        lock (_modelGate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _models.Remove(model.Name, out replaced);
            _models[model.Name] = model;
            _currentModelName = model.Name;
        }
        if (!ReferenceEquals(replaced, model)) replaced?.Dispose();
    }

    /// <summary>The named model, or the current one when <paramref name="name"/> is null or empty.</summary>
    /// <exception cref="InvalidOperationException">No model is loaded, or none has that name.</exception>
    public LoadedModel GetModel(string? name = null)
    {
        lock (_modelGate)
        {
            if (string.IsNullOrEmpty(name))
                return (_currentModelName is null ? null : _models.GetValueOrDefault(_currentModelName))
                    ?? throw new InvalidOperationException(NoModelMessage);
            if (_models.TryGetValue(name, out var model)) return model;
            if (_models.Count == 0) throw new InvalidOperationException(NoModelMessage);
            throw new InvalidOperationException($"No model named '{name}' is loaded. Loaded: {string.Join(", ", _models.Keys)}.");
        }
    }

    public bool TryGetModel(string name, out LoadedModel? model)
    {
        lock (_modelGate) return _models.TryGetValue(name, out model);
    }

    /// <summary>Unregisters and disposes (frees) the named model; returns false when none has that name.</summary>
    public bool RemoveModel(string name)
    {
        LoadedModel? removed;
        lock (_modelGate)
        {
            if (!_models.Remove(name, out removed)) return false;
            if (string.Equals(_currentModelName, removed.Name, StringComparison.OrdinalIgnoreCase))
                _currentModelName = _models.Values.OrderByDescending(m => m.Loaded).FirstOrDefault()?.Name;
        }
        removed.Dispose();
        return true;
    }

    /// <summary>
    /// Unregisters <paramref name="model"/> if it is the instance registered under its name (a newer model of the same
    /// name is left alone), and disposes it either way. Returns whether it was registered.
    /// </summary>
    public bool RemoveModel(LoadedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var registered = false;
        lock (_modelGate)
        {
            if (_models.TryGetValue(model.Name, out var current) && ReferenceEquals(current, model))
            {
                _models.Remove(model.Name);
                registered = true;
                if (string.Equals(_currentModelName, model.Name, StringComparison.OrdinalIgnoreCase))
                    _currentModelName = _models.Values.OrderByDescending(m => m.Loaded).FirstOrDefault()?.Name;
            }
        }
        model.Dispose();
        return registered;
    }

    /// <summary>Makes a loaded model current.</summary>
    public void SetCurrentModel(string name)
    {
        lock (_modelGate)
        {
            if (!_models.TryGetValue(name, out var model)) throw new InvalidOperationException($"No model named '{name}' is loaded.");
            _currentModelName = model.Name;
        }
    }

    private void DisposeModels()
    {
        LoadedModel[] models;
        lock (_modelGate)
        {
            models = _models.Values.ToArray();
            _models.Clear();
            _currentModelName = null;
        }
        foreach (var model in models) model.Dispose();
    }
}
