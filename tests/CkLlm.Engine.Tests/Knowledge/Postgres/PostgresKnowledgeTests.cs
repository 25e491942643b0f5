using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Knowledge.Ingestion;
using CkLlm.Engine.Knowledge.Storage;
using CkLlm.Engine.Knowledge.Storage.Postgres;
using Npgsql;

namespace CkLlm.Engine.Tests.Knowledge.Postgres;

/// <summary>The PostgreSQL store against a real server: parity with the folder store, the change log and the local
/// cache, concurrent writers, a writer killed mid-transaction, and the errors a user meets.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresKnowledgeTests(PostgresServerFixture server) : IDisposable
{
    private readonly KnowledgeTestDirectory _dir = new();
    private readonly string _cache = Directory.CreateTempSubdirectory("ckllm-pgcache-").FullName;

    private static readonly (string Name, string Text)[] Corpus =
    [
        ("tar.md", "# tar\n\nThe tar utility stores files in an archive and extracts them again. Use -c to create an archive, -x to extract, -z to compress with gzip.\n\n## Listing\n\nUse -t to list the members of an archive without extracting them."),
        ("ssh.md", "# ssh\n\nThe ssh client logs into a remote machine and runs commands there. Keys are kept in ~/.ssh and an agent can hold them unlocked.\n\n## Port forwarding\n\nUse -L to forward a local port to a remote host through the encrypted connection."),
        ("cron.md", "# cron\n\nThe cron daemon runs scheduled commands. Each line of a crontab has five time fields and a command; crontab -e edits the table."),
        ("grep.md", "# grep\n\ngrep searches files for lines matching a regular expression. Use -r to search directories recursively and -i to ignore case."),
        ("rsync.md", "# rsync\n\nrsync copies files between machines and only sends the differences. Use -a for archive mode and --delete to remove files missing at the source."),
        ("systemd.md", "# systemd units\n\nA unit file describes a service, socket or timer. systemctl start and systemctl enable control services; journalctl shows their logs."),
        ("git.md", "# git\n\ngit records snapshots of a project in commits. Branches point at commits; merge joins two branches and rebase replays commits onto another base."),
        ("curl.md", "# curl\n\ncurl transfers data from or to a server over HTTP, FTP and more. Use -o to write the response to a file and -H to add a request header."),
    ];

    private static readonly string[] Queries =
        ["how do I extract an archive", "forward a port over ssh", "schedule a command every night", "search text in files recursively",
         "copy only changed files to another machine", "show the logs of a service", "undo a merge of branches", "download a file over http"];

    public void Dispose()
    {
        _dir.Dispose();
        try { Directory.Delete(_cache, recursive: true); } catch (IOException) { }
    }

    private KnowledgeBaseOptions Options() => new() { ChunkSize = 60, ChunkOverlap = 10 };

    private KnowledgeBase OpenServer(string name, bool mustExist = false)
    {
        Environment.SetEnvironmentVariable("CKLLM_CACHE", _cache);
        return KnowledgeBase.Open(server.Uri(name), Options(), mustExist);
    }

    private List<string> AddCorpus(KnowledgeBase kb)
    {
        var files = Corpus.Select(c => _dir.Write(c.Name, c.Text)).ToList();
        foreach (var f in files) kb.AddFile(f, new Dictionary<string, string> { ["tool"] = Path.GetFileNameWithoutExtension(f) });
        return files;
    }

    private static List<string> Top(KnowledgeBase kb, string query, SearchMode mode) =>
        kb.Search(query, new SearchOptions { Mode = mode, Top = 10, MaxPerSource = 0 }).Select(h => $"{Path.GetFileName(h.Source)}:{h.LineStart}").ToList();

    [Fact]
    public void Same_corpus_in_a_folder_and_in_PostgreSQL_gives_the_same_top_ten()
    {
        using var folder = KnowledgeBase.Open(_dir.Kb, Options());
        using var pg = OpenServer("parity");
        AddCorpus(folder);
        AddCorpus(pg);
        Assert.Equal(folder.GetStatistics().Chunks, pg.GetStatistics().Chunks);
        foreach (var q in Queries)
        {
            Assert.Equal(Top(folder, q, SearchMode.Vector), Top(pg, q, SearchMode.Vector));
            Assert.Equal(Top(folder, q, SearchMode.Keyword).Take(1), Top(pg, q, SearchMode.Keyword).Take(1));
            Assert.Equal(Top(folder, q, SearchMode.Hybrid).Take(3), Top(pg, q, SearchMode.Hybrid).Take(3));
        }
    }

    [Fact]
    public void Metadata_filter_runs_over_jsonb_case_insensitively()
    {
        using var pg = OpenServer("filter");
        AddCorpus(pg);
        var hits = pg.Search("files", new SearchOptions { Filter = new Dictionary<string, string> { ["TOOL"] = "Rsync" }, Top = 10 });
        Assert.NotEmpty(hits);
        Assert.All(hits, h => Assert.EndsWith("rsync.md", h.Source));
    }

    [Fact]
    public void A_reader_catches_up_from_the_change_log_and_a_saved_cache_behind_is_reused()
    {
        using (var writer = OpenServer("catchup"))
        {
            AddCorpus(writer);
            writer.Flush();
        }
        using var reader = OpenServer("catchup", mustExist: true);
        Assert.Null(reader.IndexRebuildReason);
        using (var other = KnowledgeBase.Open(server.Uri("catchup"), new KnowledgeBaseOptions { VectorIndexFactory = InMemoryVectorIndex.Create }))
        {
            other.AddText("The zfs filesystem takes snapshots of datasets and sends them to another pool.", "zfs-notes");
            other.Remove(other.GetSources().Where(s => s.Source.EndsWith("curl.md", StringComparison.Ordinal)));
        }
        var hits = reader.Search("zfs snapshot of a dataset", new SearchOptions { Mode = SearchMode.Vector, Top = 3 });
        Assert.Equal("zfs-notes", hits[0].Source);
        Assert.DoesNotContain(reader.Search("download a file over http", new SearchOptions { Mode = SearchMode.Vector, Top = 20 }), h => h.Source.EndsWith("curl.md", StringComparison.Ordinal));
        reader.Dispose();
        // The cache saved before those writes is older than the database now: loaded and caught up, not rebuilt.
        using var again = OpenServer("catchup", mustExist: true);
        Assert.Null(again.IndexRebuildReason);
        Assert.Equal(again.GetStatistics().Chunks, again.GetStatistics().IndexedVectors);
    }

    [Fact]
    public void A_corrupted_cache_is_rebuilt_from_the_database()
    {
        string cacheFile;
        using (var kb = OpenServer("corrupt"))
        {
            AddCorpus(kb);
            kb.Flush();
            cacheFile = Directory.GetFiles(_cache, KnowledgeBase.IndexFileName, SearchOption.AllDirectories).Single();
        }
        var bytes = File.ReadAllBytes(cacheFile);
        for (int i = bytes.Length / 2; i < bytes.Length / 2 + 64; i++) bytes[i] ^= 0x5A;
        File.WriteAllBytes(cacheFile, bytes);
        using var reopened = OpenServer("corrupt", mustExist: true);
        Assert.Contains("checksum", reopened.IndexRebuildReason);
        Assert.Equal("ssh.md", Path.GetFileName(reopened.Search("forward a port over ssh", new SearchOptions { Mode = SearchMode.Vector })[0].Source));
    }

    [Fact]
    public void Two_writers_adding_the_same_files_at_once_leave_one_copy_of_each()
    {
        var files = Corpus.Select(c => _dir.Write(c.Name, c.Text)).ToList();
        using var a = OpenServer("twowriters");
        using var b = KnowledgeBase.Open(server.Uri("twowriters"), new KnowledgeBaseOptions { ChunkSize = 60, ChunkOverlap = 10, VectorIndexFactory = InMemoryVectorIndex.Create });
        Parallel.Invoke(
            () => { foreach (var f in files) a.AddFile(f, force: true); },
            () => { foreach (var f in Enumerable.Reverse(files)) b.AddFile(f, force: true); });
        Assert.Equal(files.Count, a.GetSources().Count);
        using var conn = Admin();
        conn.Open();
        using var cmd = new NpgsqlCommand("""
            SELECT (SELECT count(*) FROM ckllm_chunks c JOIN ckllm_knowledge_bases k ON k.id = c.kb_id WHERE k.name = 'twowriters'),
                   (SELECT sum(s.chunk_count) FROM ckllm_sources s JOIN ckllm_knowledge_bases k ON k.id = s.kb_id WHERE k.name = 'twowriters')
            """, conn);
        using var r = cmd.ExecuteReader();
        r.Read();
        Assert.Equal(r.GetInt64(1), r.GetInt64(0));
        Assert.Equal(a.GetStatistics().Chunks, a.Search("archive", new SearchOptions { Mode = SearchMode.Vector, Top = 1000, MaxPerSource = 0 }).Count);
    }

    [Fact]
    public void A_writer_whose_connection_dies_mid_transaction_leaves_the_old_source_untouched()
    {
        using var kb = OpenServer("killed");
        var file = _dir.Write("tar.md", Corpus[0].Text);
        kb.AddFile(file);
        var before = kb.GetSource(file)!;
        var generation = GenerationOf("killed");

        var location = PostgresLocation.Parse(server.Uri("killed"), null);
        using var store = PostgresKnowledgeStore.Open(location, create: false);
        var chunks = new[] { new DocumentChunk("replacement text", 1, 1, null, null, null, 3) };
        var pid = BackendPid(store);
        // The vectors are read after the old chunks were deleted and the source row rewritten, inside the transaction.
        var killer = new KillingList(() => Terminate(pid), new float[kb.Dimensions]);
        Assert.ThrowsAny<Exception>(() => store.ReplaceSource(new SourceRecord(file, SourceKind.File, "Markdown", "other", 1, "t", null), chunks, killer));

        var after = kb.GetSource(file)!;
        Assert.Equal(before.ContentHash, after.ContentHash);
        Assert.Equal(before.Chunks, after.Chunks);
        Assert.Equal(generation, GenerationOf("killed"));
        Assert.Equal(before.Chunks, kb.GetStatistics().Chunks);
    }

    [Fact]
    public void A_server_stopped_during_ingest_is_reported_with_its_address_and_nothing_partial_is_visible_after_restart()
    {
        using var kb = OpenServer("stopped");
        kb.AddFile(_dir.Write("tar.md", Corpus[0].Text));
        var second = _dir.Write("ssh.md", Corpus[1].Text);
        server.Stop();
        try
        {
            var ex = Assert.Throws<KnowledgeServerUnreachableException>(() => kb.AddFile(second));
            Assert.Equal($"127.0.0.1:{server.Port}", ex.Endpoint);
        }
        finally { server.Start(); }
        // The connection the server dropped is replaced; a command that was already on it may report the drop once.
        try { kb.GetSources(); } catch (KnowledgeServerUnreachableException) { }
        Assert.Equal(["tar.md"], kb.GetSources().Select(s => Path.GetFileName(s.Source)));
        Assert.Equal(kb.GetStatistics().Chunks, kb.GetSources().Sum(s => s.Chunks));
        Assert.Equal(IngestStatus.Added, kb.AddFile(second).Status);
    }

    [Fact]
    public void Read_only_open_of_a_missing_knowledge_base_creates_nothing()
    {
        var ex = Assert.Throws<KnowledgeBaseNotFoundException>(() => OpenServer("never-made", mustExist: true));
        Assert.Contains("never-made", ex.Message);
        OpenServer("something").Dispose(); // tables exist now; the name still does not
        Assert.Throws<KnowledgeBaseNotFoundException>(() => OpenServer("never-made", mustExist: true));
        Assert.Equal(-1, GenerationOf("never-made"));
    }

    [Fact]
    public void Unreachable_server_wrong_password_and_missing_database_are_told_apart()
    {
        var closedPort = server.Port == 1 ? 2 : 1;
        var unreachable = Assert.Throws<KnowledgeServerUnreachableException>(() => KnowledgeBase.Open($"postgresql://ck:x@127.0.0.1:{closedPort}/postgres?name=a"));
        Assert.Contains($"127.0.0.1:{closedPort}", unreachable.Message);
        Assert.Throws<KnowledgeServerAuthenticationException>(() => KnowledgeBase.Open($"postgresql://ck:wrong@127.0.0.1:{server.Port}/postgres?name=a"));
        var missingDb = Assert.Throws<KnowledgeBaseNotFoundException>(() => KnowledgeBase.Open(server.Uri("a", database: "nosuchdb")));
        Assert.Contains("nosuchdb", missingDb.Message);
        // The password can come as a credential instead of in the URI.
        using var kb = KnowledgeBase.Open(server.UriWithoutPassword("credential"),
            new KnowledgeBaseOptions { Credential = new System.Net.NetworkCredential(PostgresServerFixture.User, PostgresServerFixture.Password), VectorIndexFactory = InMemoryVectorIndex.Create });
        Assert.StartsWith("postgresql://ck@127.0.0.1:", kb.Directory);
    }

    [Fact]
    public void A_knowledge_base_built_with_one_embedder_refuses_another()
    {
        using (var kb = OpenServer("embedder")) kb.AddText("one chunk", "one");
        Assert.Throws<EmbedderMismatchException>(() =>
            KnowledgeBase.Open(server.Uri("embedder"), new KnowledgeBaseOptions { Embedder = "ArcticXs", VectorIndexFactory = InMemoryVectorIndex.Create }));
    }

    [Fact]
    public void Writes_trim_the_change_log_and_a_reader_behind_its_horizon_rebuilds_its_cache()
    {
        var files = Corpus.Select(c => _dir.Write(c.Name, c.Text)).ToList();
        using (var writer = OpenServer("trim"))
        {
            foreach (var f in files) writer.AddFile(f);
            writer.Flush(); // the saved cache reflects this generation
        }
        var liveCache = Directory.CreateTempSubdirectory("ckllm-pgcache-live-").FullName;
        try
        {
            Environment.SetEnvironmentVariable("CKLLM_CACHE", liveCache);
            using var live = KnowledgeBase.Open(server.Uri("trim"), Options(), mustExist: true);
            Environment.SetEnvironmentVariable("CKLLM_CACHE", _cache);
            var before = GenerationOf("trim");

            // Another machine rewrites every source a few times and adds one, trimming after every write to the floor.
            var location = PostgresLocation.Parse(server.Uri("trim"), null);
            using (var store = PostgresKnowledgeStore.Open(location, create: false))
            {
                store.ChangeLogTrimInterval = 1;
                store.ChangeLogMinimumRows = 0;
                int written = 0;
                for (int round = 0; round < 3; round++)
                    foreach (var f in files)
                    {
                        var vector = new float[live.Dimensions];
                        vector[written++] = 1; // distinct unit vectors
                        store.ReplaceSource(new SourceRecord(f, SourceKind.File, "Markdown", $"round{round}", 1, Path.GetFileNameWithoutExtension(f), null),
                            [new DocumentChunk($"{Path.GetFileName(f)} rewritten in round {round}", 1, 1, null, null, null, 6)], [vector]);
                    }
                Assert.Null(store.ChangesSince(before)); // trimmed past it
                Assert.NotNull(store.ChangesSince(store.Generation));
            }
            using (var conn = Admin())
            {
                conn.Open();
                using var cmd = new NpgsqlCommand("SELECT count(*) FROM ckllm_changes c JOIN ckllm_knowledge_bases k ON k.id = c.kb_id WHERE k.name = 'trim'", conn);
                // 24 writes logged 8 + 16 * 2 chunk changes: what is left is no more than the knowledge base's 8 chunks.
                Assert.InRange((long)cmd.ExecuteScalar()!, 0, files.Count);
            }
            using (var other = KnowledgeBase.Open(server.Uri("trim"), new KnowledgeBaseOptions { ChunkSize = 60, ChunkOverlap = 10, VectorIndexFactory = InMemoryVectorIndex.Create }))
                other.AddText("The zfs filesystem takes snapshots of datasets and sends them to another pool.", "zfs-notes");

            // A reader that was open all along compares ids instead, and sees exactly the database.
            var hits = live.Search("zfs snapshot of a dataset", new SearchOptions { Mode = SearchMode.Vector, Top = 20, MaxPerSource = 0 });
            Assert.Equal("zfs-notes", hits[0].Source);
            Assert.Equal(files.Count + 1, live.GetStatistics().IndexedVectors);
            Assert.All(hits.Skip(1), h => Assert.Contains("rewritten in round 2", h.Text));

            // The cache saved before the trimmed writes cannot be caught up from the log: it is rebuilt.
            using var reopened = OpenServer("trim", mustExist: true);
            Assert.NotNull(reopened.IndexRebuildReason);
            Assert.Equal(reopened.GetStatistics().Chunks, reopened.GetStatistics().IndexedVectors);
            Assert.Equal("zfs-notes", reopened.Search("zfs snapshot of a dataset", new SearchOptions { Mode = SearchMode.Vector })[0].Source);
        }
        finally
        {
            Environment.SetEnvironmentVariable("CKLLM_CACHE", _cache);
            try { Directory.Delete(liveCache, recursive: true); } catch (IOException) { }
        }
    }

    [Fact]
    public void Keyword_search_finds_words_inside_paths_and_dotted_names_as_the_folder_store_does_also_after_an_upgrade_from_schema_1()
    {
        const string text = "Mount points are listed in /etc/fstab. The systemd.automount unit mounts a file system on first access.";
        using var folder = KnowledgeBase.Open(_dir.Kb, Options());
        using var pg = OpenServer("paths");
        foreach (var kb in new[] { folder, pg })
        {
            kb.AddText(text, "mounting");
            kb.AddText("Archives are made with tar and compressed with gzip.", "archives");
        }
        foreach (var query in new[] { "fstab", "automount", "etc" })
        {
            Assert.Equal(["mounting"], folder.Search(query, new SearchOptions { Mode = SearchMode.Keyword }).Select(h => h.Source));
            Assert.Equal(["mounting"], pg.Search(query, new SearchOptions { Mode = SearchMode.Keyword }).Select(h => h.Source));
        }

        // A database written by schema 1 (raw text in the tsvector, no postings) is re-indexed by the next writer.
        using (var conn = Admin())
        {
            conn.Open();
            using var cmd = new NpgsqlCommand("""
                UPDATE ckllm_chunks SET tsv = to_tsvector('english', text);
                DELETE FROM ckllm_postings;
                DELETE FROM ckllm_schema WHERE version > 1;
                INSERT INTO ckllm_schema VALUES (1) ON CONFLICT DO NOTHING;
                """, conn);
            cmd.ExecuteNonQuery();
        }
        Assert.Empty(pg.Search("fstab", new SearchOptions { Mode = SearchMode.Keyword }));
        using (OpenServer("paths")) { }
        Assert.Equal(["mounting"], pg.Search("fstab", new SearchOptions { Mode = SearchMode.Keyword }).Select(h => h.Source));
    }

    [Fact]
    public void Pruning_a_list_made_while_a_file_was_gone_keeps_the_file_another_writer_put_back()
    {
        using var pruner = OpenServer("prune-race");
        using var writer = KnowledgeBase.Open(server.Uri("prune-race"), new KnowledgeBaseOptions { ChunkSize = 60, ChunkOverlap = 10, VectorIndexFactory = InMemoryVectorIndex.Create });
        var files = Corpus.Take(3).Select(c => _dir.Write(c.Name, c.Text)).ToList();
        foreach (var f in files) pruner.AddFile(f);
        File.Delete(files[0]);
        File.Delete(files[1]);
        var listed = pruner.GetMissingSources(); // what Sync-CkKnowledge lists before it asks and removes
        Assert.Equal(2, listed.Count);

        // Meanwhile another writer puts one file back unchanged: its add is a no-op, the stored source stays as listed.
        File.WriteAllText(files[0], Corpus[0].Text);
        Assert.Equal(IngestStatus.Skipped, writer.AddFile(files[0]).Status);

        var removed = pruner.RemoveMissing(listed);
        Assert.Equal([files[1]], removed.Select(r => r.Source));
        Assert.Equal(new[] { files[0], files[2] }.Order(StringComparer.Ordinal), pruner.GetSources().Select(s => s.Source).Order(StringComparer.Ordinal));
        // A second pruner with the same stale list removes nothing more and reports nothing.
        Assert.Empty(writer.RemoveMissing(listed));
    }

    private long GenerationOf(string name)
    {
        using var conn = Admin();
        conn.Open();
        using var cmd = new NpgsqlCommand("SELECT generation FROM ckllm_knowledge_bases WHERE name = $1", conn) { Parameters = { new() { Value = name } } };
        return cmd.ExecuteScalar() is long g ? g : -1;
    }

    /// <summary>A connection of the test's own to look at the tables (not pooled: the server restarts in one test).</summary>
    private NpgsqlConnection Admin() =>
        new($"Host=127.0.0.1;Port={server.Port};Username={PostgresServerFixture.User};Password={PostgresServerFixture.Password};Database=postgres;Pooling=false");

    private static int BackendPid(PostgresKnowledgeStore store) => store.BackendProcessId;

    private void Terminate(int pid)
    {
        using var conn = Admin();
        conn.Open();
        using var cmd = new NpgsqlCommand("SELECT pg_terminate_backend($1)", conn) { Parameters = { new() { Value = pid } } };
        cmd.ExecuteScalar();
        Thread.Sleep(200);
    }

    /// <summary>A one-vector list that kills the writer's connection the first time the vector is read.</summary>
    private sealed class KillingList(Action kill, float[] vector) : IReadOnlyList<float[]>
    {
        private bool _killed;
        public float[] this[int index] { get { if (!_killed) { _killed = true; kill(); } return vector; } }
        public int Count => 1;
        public IEnumerator<float[]> GetEnumerator() { yield return this[0]; }
        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
