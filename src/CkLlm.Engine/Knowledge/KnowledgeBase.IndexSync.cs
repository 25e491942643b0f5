using CkLlm.Engine.Knowledge.Storage;

namespace CkLlm.Engine.Knowledge;

/// <summary>Keeping the HNSW cache in step with the database (which is the truth), and saving it.</summary>
public sealed partial class KnowledgeBase
{
    /// <summary>Brings the in-memory index up to the database (another process may have written).</summary>
    private void SyncIndex()
    {
        lock (_syncGate)
        {
            var generation = _store.Generation;
            if (generation == _index.Generation) return;
            if (!_index.HoldsVectors)
            {
                _index.Generation = generation; // it searches the store's own copy: nothing to fetch
                return;
            }
            if (_index.Generation >= 0 && _store.ChangesSince(_index.Generation) is { } changes)
            {
                ApplyChanges(changes);
                return;
            }
            var dbIds = _store.GetChunkIds();
            var indexed = _index.Keys;
            var stale = indexed.Where(id => !dbIds.Contains(id)).ToList();
            var indexedSet = indexed as IReadOnlySet<long> ?? indexed.ToHashSet();
            var missing = dbIds.Where(id => !indexedSet.Contains(id)).ToList();
            _index.Remove(stale);
            foreach (var batch in _store.ReadVectors(missing).Chunk(1024))
                _index.Add(batch.Select(b => b.Id).ToArray(), batch.Select(b => b.Vector).ToArray());
            _index.Generation = generation;
            if (stale.Count > 0 || missing.Count > 0) _indexDirty = true;
        }
    }

    /// <summary>Applies a change log slice (chunk ids are never reused, so an id both added and removed is gone).</summary>
    private void ApplyChanges(StoreChanges changes)
    {
        lock (_syncGate)
        {
            var removed = changes.Removed.ToHashSet();
            _index.Remove(removed);
            var added = changes.Added.Where(id => !removed.Contains(id)).ToList();
            foreach (var batch in _store.ReadVectors(added).Chunk(1024))
                _index.Add(batch.Select(b => b.Id).ToArray(), batch.Select(b => b.Vector).ToArray());
            _index.Generation = changes.Generation;
            if (removed.Count > 0 || added.Count > 0) _indexDirty = true;
        }
    }

    private void UpdateIndexAfterCommit(StoreCommit commit, IReadOnlyList<float[]> vectors)
    {
        lock (_syncGate)
        {
            _index.Remove(commit.RemovedChunkIds);
            if (commit.ChunkIds.Length > 0) _index.Add(commit.ChunkIds, vectors);
            // Another machine may have committed between our catch-up and our commit: then the index stays at the
            // older generation and the next catch-up brings the rest (adding our own chunks again is a no-op).
            if (_index.Generation == commit.Generation - 1) _index.Generation = commit.Generation;
            _indexDirty = true;
        }
        if (DateTime.UtcNow - _lastSave > IndexSaveInterval) SaveIndex();
    }

    /// <summary>Saves the HNSW index now if it changed (done automatically every 30 s of writing and on Dispose).</summary>
    public void Flush()
    {
        if (!_indexDirty) return;
        lock (_writeGate)
        {
            try
            {
                using var writer = WriterLock.Acquire(_cacheDirectory, _options.WriterLockTimeout, CancellationToken.None);
                SyncIndex();
                SaveIndex();
            }
            catch (KnowledgeBaseBusyException)
            {
                // Another writer owns the files now and will save an index that includes our work; the database
                // is the truth either way.
            }
        }
    }

    private void SaveIndex()
    {
        lock (_syncGate)
        {
            // Only a file that matches the committed database may be written.
            if (_index.Generation != _store.Generation) return;
            _index.Save(_indexPath);
            _indexDirty = false;
            _lastSave = DateTime.UtcNow;
        }
    }
}
