using CkLlm.Engine.Knowledge;
using CkLlm.Engine.Knowledge.Embedding;
using CkLlm.Engine.Knowledge.Ingestion;
using CkLlm.Engine.Knowledge.Search;
using Microsoft.Data.Sqlite;

namespace CkLlm.Engine.Tests.Knowledge;

/// <summary>Embedders by name, contextual chunks, the schema migration and per-document fusion.</summary>
public class RetrievalContextTests
{
    /// <summary>Records every text it embeds; vectors are bags of hashed words (enough to rank by shared words).</summary>
    private sealed class RecordingEmbedder(string id) : IEmbedder
    {
        public List<string> Passages { get; } = [];
        public List<string> Queries { get; } = [];
        public string Id => id;
        public string Locator => id;
        public int Dimensions => 64;
        public int MaxTokens => 100;
        public int CountTokens(string text) => text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length;

        public float[][] Embed(IReadOnlyList<string> texts, CancellationToken cancellationToken = default)
        {
            lock (Passages) Passages.AddRange(texts);
            return texts.Select(Vector).ToArray();
        }

        public float[] EmbedQuery(string query, CancellationToken cancellationToken = default)
        {
            lock (Queries) Queries.Add(query);
            return Vector("query: " + query);
        }

        private static float[] Vector(string text)
        {
            var v = new float[64];
            foreach (var w in text.ToLowerInvariant().Split(' ', '\n', ':', '.', ','))
                if (w.Length > 2) v[(w.GetHashCode(StringComparison.Ordinal) & 0x7fffffff) % 64] += 1;
            v[0] += 0.01f;
            var norm = MathF.Sqrt(v.Sum(x => x * x));
            return v.Select(x => x / norm).ToArray();
        }

        public void Dispose() { }
    }

    private static RecordingEmbedder Register(string name)
    {
        var embedder = new RecordingEmbedder(name);
        EmbedderRegistry.Register(name, () => embedder);
        return embedder;
    }

    [Fact]
    public void AnUnknownEmbedderNameIsAClearErrorNamingTheKnownOnes()
    {
        using var dir = new KnowledgeTestDirectory();
        var ex = Assert.Throws<UnknownEmbedderException>(() => KnowledgeBase.Open(dir.Kb, new KnowledgeBaseOptions { Embedder = "NoSuchModel" }));
        Assert.Contains("NoSuchModel", ex.Message);
        Assert.Contains("ArcticXs", ex.Message);
        Assert.Contains("MiniLM", ex.Message);
    }

    [Fact]
    public void AKnowledgeBaseKeepsItsRecordedEmbedderAndRefusesAnother()
    {
        using var dir = new KnowledgeTestDirectory();
        var first = Register("test-recorder-a-" + Guid.NewGuid().ToString("N"));
        var second = Register("test-recorder-b-" + Guid.NewGuid().ToString("N"));
        using (var kb = KnowledgeBase.Open(dir.Kb, new KnowledgeBaseOptions { Embedder = first.Id }))
            kb.AddText("Kestrels hover over the meadow.", "birds");
        // Reopened without a name: the recorded embedder, found through its recorded locator.
        using (var kb = KnowledgeBase.Open(dir.Kb))
        {
            Assert.Equal(first.Id, kb.Embedder);
            Assert.Equal("birds", kb.Search("kestrels meadow", new SearchOptions { Mode = SearchMode.Vector })[0].Source);
        }
        var ex = Assert.Throws<EmbedderMismatchException>(() => KnowledgeBase.Open(dir.Kb, new KnowledgeBaseOptions { Embedder = second.Id }));
        Assert.Contains(first.Id, ex.Message);
    }

    [Fact]
    public void QueriesGoThroughTheQueryPathAndPassagesCarryTitleAndHeadingPath()
    {
        using var dir = new KnowledgeTestDirectory();
        var embedder = Register("test-recorder-" + Guid.NewGuid().ToString("N"));
        var file = dir.Write("docs/tides.md", "# Tide tables\n\nIntro line.\n\n## Spring tides\n\nThe moon and sun align twice a month.\n");
        using var kb = KnowledgeBase.Open(dir.Kb, new KnowledgeBaseOptions { Embedder = embedder.Id });
        kb.AddFile(file);
        Assert.Contains(embedder.Passages, p => p.StartsWith("tides: Tide tables\n", StringComparison.Ordinal) && p.Contains("Spring tides") && p.EndsWith("twice a month.", StringComparison.Ordinal));
        kb.Search("when do the sun and moon line up");
        Assert.Equal(["when do the sun and moon line up"], embedder.Queries);
        // The keyword index finds the chunk by its document title even though the chunk's body never says "tables".
        var hit = Assert.Single(kb.Search("tables", new SearchOptions { Mode = SearchMode.Keyword, MaxPerSource = 1 }));
        Assert.Equal("tides: Tide tables", hit.Title);
    }

    [Fact]
    public void ArcticXsEmbedsQueriesWithItsInstructionPrefixAndPassagesWithout()
    {
        var arctic = EmbedderRegistry.Resolve(ArcticXsEmbedder.Name);
        const string query = "how do I list files";
        var viaQueryPath = arctic.EmbedQuery(query);
        var prefixed = arctic.Embed([ArcticXsEmbedder.QueryPrefix + query])[0];
        var plain = arctic.Embed([query])[0];
        Assert.Equal(prefixed, viaQueryPath);
        Assert.NotEqual(plain, viaQueryPath);
        Assert.Equal("snowflake-arctic-embed-xs", arctic.Id);
    }

    [Fact]
    public void ManAndPydocPagesAreTitledByTheirNameLine()
    {
        var man = "LS(1)                User Commands               LS(1)\n\nNAME\n       ls - list directory contents\n\nSYNOPSIS\n       ls [OPTION]...";
        Assert.Equal("ls.1: ls - list directory contents",
            ChunkContext.Title("/c/man1/ls.1.txt", SourceKind.File, [new DocumentSection(man, 1, null, null)]));
        var pydoc = "Help on module json:\n\nNAME\n    json - JSON (JavaScript Object Notation) encoder and decoder\n\nDESCRIPTION\n";
        Assert.Equal("json - JSON (JavaScript Object Notation) encoder and decoder",
            ChunkContext.Title("/c/json.txt", SourceKind.File, [new DocumentSection(pydoc, 1, null, null)]));
        Assert.Equal("zlib/README", ChunkContext.Title("/usr/share/doc/zlib/README", SourceKind.File, [new DocumentSection("plain words", 1, null, null)]));
        Assert.Null(ChunkContext.Title("text:abc123", SourceKind.Text, [new DocumentSection("plain words", 1, null, null)]));
    }

    [Fact]
    public void ChunksWithTheirContextNeverExceedTheEmbedderWindow()
    {
        using var dir = new KnowledgeTestDirectory();
        var embedder = Register("test-recorder-" + Guid.NewGuid().ToString("N"));
        var longTitle = string.Join(" ", Enumerable.Range(0, 80).Select(i => "title" + i));
        var body = string.Join(" ", Enumerable.Range(0, 2000).Select(i => "word" + i));
        var file = dir.Write("long.md", $"# {longTitle}\n\n## {longTitle}\n\n{body}\n");
        using var kb = KnowledgeBase.Open(dir.Kb, new KnowledgeBaseOptions { Embedder = embedder.Id, ChunkSize = 100, ChunkOverlap = 10 });
        kb.AddFile(file);
        Assert.True(embedder.Passages.Count > 10);
        Assert.All(embedder.Passages, p => Assert.InRange(embedder.CountTokens(p), 1, embedder.MaxTokens));
        Assert.Contains(embedder.Passages, p => p.StartsWith("long: title0 title1", StringComparison.Ordinal));
    }

    [Fact]
    public void AVersion1KnowledgeBaseIsMigratedOnOpenAndSearchesByTitle()
    {
        using var dir = new KnowledgeTestDirectory();
        var embedder = Register("test-recorder-" + Guid.NewGuid().ToString("N"));
        var file = dir.Write("volcanoes.txt", "Magma rises through the crust and erupts as lava.");
        using (var kb = KnowledgeBase.Open(dir.Kb, new KnowledgeBaseOptions { Embedder = embedder.Id })) kb.AddFile(file);
        // Turn it into what CkLlm wrote before contextual chunks: one (text, heading) FTS table, no titles, version 1.
        using (var db = new SqliteConnection($"Data Source={Path.Combine(dir.Kb, KnowledgeBase.DatabaseFileName)};Pooling=False"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = """
                DROP TABLE chunks_fts;
                CREATE VIRTUAL TABLE chunks_fts USING fts5(text, heading, tokenize='porter unicode61');
                INSERT INTO chunks_fts(rowid, text, heading) SELECT id, text, heading FROM chunks;
                ALTER TABLE sources DROP COLUMN title;
                UPDATE meta SET value = '1' WHERE key = 'schema_version';
                """;
            cmd.ExecuteNonQuery();
        }
        var before = KnowledgeDocuments.Read(dir.Kb); // read-only readers accept version 1 as it is
        Assert.Contains("Magma", Assert.Single(before).Text);
        using (var kb = KnowledgeBase.Open(dir.Kb))
        {
            var hit = Assert.Single(kb.Search("volcanoes", new SearchOptions { Mode = SearchMode.Keyword }));
            Assert.Equal("volcanoes", hit.Title);
            Assert.Single(kb.Search("magma lava", new SearchOptions { Mode = SearchMode.Keyword }));
        }
        using var check = new SqliteConnection($"Data Source={Path.Combine(dir.Kb, KnowledgeBase.DatabaseFileName)};Pooling=False");
        check.Open();
        using var version = check.CreateCommand();
        version.CommandText = "SELECT value FROM meta WHERE key = 'schema_version'";
        Assert.Equal("2", version.ExecuteScalar());
    }

    [Fact]
    public void FusionAddsKeywordAndVectorEvidenceFromDifferentChunksOfOneDocument()
    {
        // Document 1: its best keyword chunk (10) and best vector chunk (11) differ; document 2 is strong on one side only.
        var keyword = new List<ChunkScore> { new(20, 2, 10.0), new(10, 1, 9.0) };
        var vector = new List<ChunkScore> { new(20, 2, 0.10), new(11, 1, 0.80) };
        var fused = DocumentFusion.Fuse(keyword, vector, new SearchOptions { Fusion = FusionMethod.Score, VectorWeight = 0.5 });
        Assert.Equal(10, fused[0].ChunkId); // document 1's best chunk carries the document's combined score
        Assert.Equal(0.5 * 0.9 + 0.5 * 0.8, fused[0].Score, 6);
        Assert.Equal(20, fused[1].ChunkId);
        Assert.Equal(11, fused[2].ChunkId); // document 1's other chunk keeps its own, lower score
        Assert.Equal(0.5 * 0.8, fused[2].Score, 6);

        // A keyword cutoff of 95% of the best BM25 drops document 1's keyword evidence.
        var cut = DocumentFusion.Fuse(keyword, vector, new SearchOptions { Fusion = FusionMethod.Score, VectorWeight = 0.5, KeywordCutoff = 0.95 });
        Assert.Equal(0.5 * 0.8, cut.First(c => c.ChunkId == 11).Score, 6);

        // Weighted RRF over document ranks (k = 1), normalised so first in both rankings would score 1.
        var rrf = DocumentFusion.Fuse(keyword, vector, new SearchOptions { Fusion = FusionMethod.Rrf, VectorWeight = 0.7, RrfK = 1 });
        Assert.Equal(11, rrf[0].ChunkId);
        Assert.Equal((0.3 / 3 + 0.7 / 2) / 0.5, rrf[0].Score, 6);
        Assert.Equal((0.3 / 2 + 0.7 / 3) / 0.5, rrf[1].Score, 6);
    }
    [Fact]
    public void FusionBlendsTheWholeDocumentsVectorIntoItsVectorEvidence()
    {
        // Document 1 has the best single chunk; document 2 as a whole is closer to the query.
        var vector = new List<ChunkScore> { new(10, 1, 0.70), new(20, 2, 0.65) };
        var whole = new Dictionary<long, double> { [1] = 0.20, [2] = 0.60 };
        var asked = new List<long>();
        IReadOnlyDictionary<long, double> Cosines(IReadOnlyCollection<long> ids)
        {
            asked.AddRange(ids);
            return whole.Where(w => ids.Contains(w.Key)).ToDictionary();
        }
        var fused = DocumentFusion.Fuse([], vector, new SearchOptions { VectorWeight = 1, DocumentWeight = 0.5 }, Cosines);
        Assert.Equal(20, fused[0].ChunkId);
        Assert.Equal(0.5 * 0.65 + 0.5 * 0.60, fused[0].Score, 6);
        Assert.Equal(0.5 * 0.70 + 0.5 * 0.20, fused[1].Score, 6);
        Assert.Equal([1L, 2L], asked.Order());

        // DocumentWeight 0: the best chunks alone decide, and no document vector is needed.
        asked.Clear();
        var chunksOnly = DocumentFusion.Fuse([], vector, new SearchOptions { VectorWeight = 1, DocumentWeight = 0 }, Cosines);
        Assert.Equal(10, chunksOnly[0].ChunkId);
        Assert.Empty(asked);
    }

    [Fact]
    public void ADocumentsVectorIsItsChunksMeanPulledTowardsItsOpeningChunk()
    {
        float[] opening = [1, 0, 0], body = [0, 1, 0];
        var v = DocumentVectors.Combine([opening, body, body]);
        // mean (1, 2, 0)/sqrt(5), then 0.7 of it plus 0.3 of the opening chunk, normalised
        var x = 0.7 / Math.Sqrt(5) + 0.3;
        var y = 0.7 * 2 / Math.Sqrt(5);
        var norm = Math.Sqrt(x * x + y * y);
        Assert.Equal(x / norm, v[0], 5);
        Assert.Equal(y / norm, v[1], 5);
        Assert.Equal(0, v[2]);
    }

    [Fact]
    public void DocumentVectorsAreReadOncePerGeneration()
    {
        var cache = new DocumentVectors();
        var reads = new List<long[]>();
        Dictionary<long, List<float[]>> Read(IReadOnlyCollection<long> ids)
        {
            reads.Add(ids.Order().ToArray());
            return ids.ToDictionary(id => id, id => new List<float[]> { new float[] { id, 1 } });
        }
        Assert.Equal(2, cache.Get([1, 2], generation: 5, Read).Count);
        Assert.Equal(3, cache.Get([2, 3, 1], generation: 5, Read).Count);
        cache.Get([1], generation: 6, Read); // the knowledge base changed: documents are read again
        Assert.Equal([[1L, 2L], [3L], [1L]], reads);
    }

    [Theory]
    [InlineData("Use TaskCompletionSource here.", "Use Task Completion Source here.")]
    [InlineData("ExecStart=/bin/true", "Exec Start=/bin/true")]
    [InlineData("an HTMLParser and UTF8Encoding", "an HTML Parser and UTF8 Encoding")]
    [InlineData("System.DateOnly.TryParse(String)", "System.Date Only.Try Parse(String)")]
    [InlineData("user IDs, URIs, IPv6 and macOS", "user IDs, URIs, IPv6 and macOS")]
    [InlineData("plain words stay", "plain words stay")]
    public void CompoundIdentifiersAreSplitIntoTheirWordsForTheEmbedder(string text, string expected) =>
        Assert.Equal(expected, ChunkContext.SplitIdentifiers(text));

    [Fact]
    public void ANewKnowledgeBaseEmbedsPassagesAndQueriesWithIdentifiersSplitAndKeepsTheStoredTextAsWritten()
    {
        using var dir = new KnowledgeTestDirectory();
        var embedder = Register("test-recorder-" + Guid.NewGuid().ToString("N"));
        using var kb = KnowledgeBase.Open(dir.Kb, new KnowledgeBaseOptions { Embedder = embedder.Id });
        kb.AddText("A TaskCompletionSource completes the task by hand.", "tasks");
        Assert.Equal("A Task Completion Source completes the task by hand.", Assert.Single(embedder.Passages).Split('\n')[^1]);
        var hit = kb.Search("what does TaskCompletionSource do", new SearchOptions { Mode = SearchMode.Vector })[0];
        Assert.Equal(["what does Task Completion Source do"], embedder.Queries);
        Assert.Contains("TaskCompletionSource", hit.Text);
        Assert.Single(kb.Search("TaskCompletionSource", new SearchOptions { Mode = SearchMode.Keyword }));
        Assert.Equal("split-identifiers", kb.GetStatistics().EmbeddingText);
    }

    [Fact]
    public void AKnowledgeBaseBuiltBeforeIdentifiersWereSplitKeepsEmbeddingPlainText()
    {
        using var dir = new KnowledgeTestDirectory();
        var embedder = Register("test-recorder-" + Guid.NewGuid().ToString("N"));
        using (var kb = KnowledgeBase.Open(dir.Kb, new KnowledgeBaseOptions { Embedder = embedder.Id }))
            kb.AddText("A TaskCompletionSource completes the task by hand.", "tasks");
        ForgetTextStyle(dir.Kb);
        embedder.Passages.Clear();
        using (var kb = KnowledgeBase.Open(dir.Kb))
        {
            kb.AddText("A ValueTask avoids an allocation.", "valuetask");
            Assert.Equal("A ValueTask avoids an allocation.", Assert.Single(embedder.Passages).Split('\n')[^1]);
            kb.Search("ValueTask", new SearchOptions { Mode = SearchMode.Vector });
            Assert.Equal(["ValueTask"], embedder.Queries);
            Assert.Equal("plain", kb.GetStatistics().EmbeddingText);
        }
    }

    [Fact]
    public void CopiedVectorsKeepTheirTextStyleAnEmptyTargetTakesItAndAFilledOneOfAnotherStyleRefuses()
    {
        using var dir = new KnowledgeTestDirectory();
        var embedder = Register("test-recorder-" + Guid.NewGuid().ToString("N"));
        var options = new KnowledgeBaseOptions { Embedder = embedder.Id };
        var plainDir = Path.Combine(dir.Path, "plain");
        using (var kb = KnowledgeBase.Open(plainDir, options)) kb.AddText("A ValueTask avoids an allocation.", "valuetask");
        ForgetTextStyle(plainDir);
        using var plain = KnowledgeBase.Open(plainDir);
        var source = Assert.Single(plain.GetSources());

        using (var empty = KnowledgeBase.Open(Path.Combine(dir.Path, "empty"), options))
        {
            Assert.Equal(IngestStatus.Added, plain.CopySourceTo(source, empty).Status);
            Assert.Equal("plain", empty.GetStatistics().EmbeddingText);
        }
        using var filled = KnowledgeBase.Open(Path.Combine(dir.Path, "filled"), options);
        filled.AddText("A TaskCompletionSource completes the task by hand.", "tasks");
        var ex = Assert.Throws<EmbedderMismatchException>(() => plain.CopySourceTo(source, filled));
        Assert.Contains("split-identifiers", ex.Message);
        Assert.Single(filled.GetSources());
    }

    /// <summary>What a knowledge base created before the text style was recorded looks like.</summary>
    private static void ForgetTextStyle(string kbDirectory)
    {
        using var db = new SqliteConnection($"Data Source={Path.Combine(kbDirectory, KnowledgeBase.DatabaseFileName)};Pooling=False");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "DELETE FROM meta WHERE key = 'embedding_text'";
        Assert.Equal(1, cmd.ExecuteNonQuery());
    }
}
