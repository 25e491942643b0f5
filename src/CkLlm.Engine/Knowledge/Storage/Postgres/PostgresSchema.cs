namespace CkLlm.Engine.Knowledge.Storage.Postgres;

/// <summary>The tables of the server store (shared by every knowledge base in the database, keyed by <c>kb_id</c>).</summary>
internal static class PostgresSchema
{
    /// <summary>The text search configuration: the English Snowball stemmer, the closest to FTS5's porter tokenizer.</summary>
    public const string TextSearchConfig = "english";

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
        """;
}
