namespace CkLlm.Engine.Knowledge.Storage.Postgres;

/// <summary>The tables of the server store (shared by every knowledge base in the database, keyed by <c>kb_id</c>).</summary>
internal static class PostgresSchema
{
    /// <summary>The text search configuration: the English Snowball stemmer, the closest to FTS5's porter tokenizer.</summary>
    public const string TextSearchConfig = "english";

    /// <summary>Text as the keyword index sees it: ASCII punctuation turned into spaces, so PostgreSQL's parser finds the
    /// words FTS5's unicode61 tokenizer finds ('/etc/fstab' is 'etc' and 'fstab', 'systemd.automount' two words, not a
    /// file or host token that a query word never matches).</summary>
    public static string SearchableText(string sql) => $"regexp_replace({sql}, '[[:punct:]]+', ' ', 'g')";

    /// <summary>The chunk's tsvector: title weight A, heading path B, body C.</summary>
    public static string WeightedTsvector(string title, string heading, string body) =>
        $"setweight(to_tsvector('{TextSearchConfig}', {SearchableText($"coalesce({title}, '')")}), 'A') || " +
        $"setweight(to_tsvector('{TextSearchConfig}', {SearchableText($"coalesce({heading}, '')")}), 'B') || " +
        $"setweight(to_tsvector('{TextSearchConfig}', {SearchableText(body)}), 'C')";

    /// <summary>Version 1 indexed the raw text (file paths and dotted names as single tokens) and had no postings: a
    /// writer re-indexes it.</summary>
    public static readonly string UpgradeFrom1 = $"""
        UPDATE ckllm_chunks c SET tsv = {WeightedTsvector("(SELECT s.title FROM ckllm_sources s WHERE s.id = c.source_id)", "c.heading", "c.text")};
        UPDATE ckllm_chunks SET tsv_length = (SELECT coalesce(sum(array_length(positions, 1)), 0) FROM unnest(tsv));
        UPDATE ckllm_knowledge_bases k SET token_total = (SELECT coalesce(sum(tsv_length), 0) FROM ckllm_chunks c WHERE c.kb_id = k.id);
        DELETE FROM ckllm_postings;
        {string.Format(System.Globalization.CultureInfo.InvariantCulture, InsertPostings, "true")};
        """;

    public const string Create = """
        CREATE TABLE IF NOT EXISTS ckllm_schema (version int PRIMARY KEY);
        CREATE TABLE IF NOT EXISTS ckllm_knowledge_bases (
            id serial PRIMARY KEY,
            name text NOT NULL UNIQUE,
            uid uuid NOT NULL DEFAULT gen_random_uuid(),
            generation bigint NOT NULL DEFAULT 0,
            chunk_count bigint NOT NULL DEFAULT 0,
            token_total bigint NOT NULL DEFAULT 0,
            created_utc timestamptz NOT NULL DEFAULT now());
        CREATE TABLE IF NOT EXISTS ckllm_meta (
            kb_id int NOT NULL REFERENCES ckllm_knowledge_bases(id) ON DELETE CASCADE,
            key text NOT NULL,
            value text NOT NULL,
            PRIMARY KEY (kb_id, key));
        CREATE TABLE IF NOT EXISTS ckllm_sources (
            id bigserial PRIMARY KEY,
            kb_id int NOT NULL REFERENCES ckllm_knowledge_bases(id) ON DELETE CASCADE,
            source text NOT NULL,
            kind text NOT NULL,
            format text NOT NULL,
            content_hash text NOT NULL,
            size bigint NOT NULL,
            chunk_count int NOT NULL,
            added_utc timestamptz NOT NULL,
            updated_utc timestamptz NOT NULL,
            metadata jsonb,
            title text,
            UNIQUE (kb_id, source));
        CREATE TABLE IF NOT EXISTS ckllm_chunks (
            id bigserial PRIMARY KEY,
            kb_id int NOT NULL REFERENCES ckllm_knowledge_bases(id) ON DELETE CASCADE,
            source_id bigint NOT NULL REFERENCES ckllm_sources(id) ON DELETE CASCADE,
            ordinal int NOT NULL,
            text text NOT NULL,
            heading text,
            line_start int,
            line_end int,
            page int,
            token_count int NOT NULL,
            metadata jsonb,
            vector bytea NOT NULL,
            tsv tsvector NOT NULL,
            tsv_length int NOT NULL,
            UNIQUE (source_id, ordinal));
        CREATE INDEX IF NOT EXISTS ckllm_chunks_kb ON ckllm_chunks(kb_id);
        CREATE INDEX IF NOT EXISTS ckllm_chunks_tsv ON ckllm_chunks USING gin(tsv);
        CREATE INDEX IF NOT EXISTS ckllm_chunks_metadata ON ckllm_chunks USING gin(metadata jsonb_path_ops);
        CREATE TABLE IF NOT EXISTS ckllm_changes (
            kb_id int NOT NULL REFERENCES ckllm_knowledge_bases(id) ON DELETE CASCADE,
            generation bigint NOT NULL,
            chunk_id bigint NOT NULL,
            added boolean NOT NULL);
        CREATE INDEX IF NOT EXISTS ckllm_changes_kb_generation ON ckllm_changes(kb_id, generation);
        CREATE TABLE IF NOT EXISTS ckllm_postings (
            kb_id int NOT NULL REFERENCES ckllm_knowledge_bases(id) ON DELETE CASCADE,
            lexeme text NOT NULL,
            chunk_id bigint NOT NULL,
            title_tf smallint NOT NULL,
            heading_tf smallint NOT NULL,
            body_tf smallint NOT NULL,
            chunk_length int NOT NULL,
            PRIMARY KEY (kb_id, lexeme, chunk_id) INCLUDE (title_tf, heading_tf, body_tf, chunk_length));
        """;

    /// <summary>The postings of the chunks selected by <c>{0}</c> (a condition on <c>c</c>), from their tsvectors: per
    /// lexeme, how often it occurs in the title (A), the headings (B) and the body (C), and the chunk's length.</summary>
    public const string InsertPostings = """
        INSERT INTO ckllm_postings(kb_id, lexeme, chunk_id, title_tf, heading_tf, body_tf, chunk_length)
        SELECT c.kb_id, u.lexeme, c.id, coalesce(cardinality(array_positions(u.weights, 'A')), 0), coalesce(cardinality(array_positions(u.weights, 'B')), 0),
               coalesce(cardinality(array_positions(u.weights, 'C')), 0), c.tsv_length
        FROM ckllm_chunks c CROSS JOIN LATERAL unnest(c.tsv) u
        WHERE {0}
        """;
}
