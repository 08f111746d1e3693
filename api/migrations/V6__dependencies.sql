-- Function dependencies (DESIGN §12): a build per distinct (language, dependencies text), its
-- artifact stored in chunks, and which version of a function serves calls while its newest
-- version's build is not ready.

-- One build per build key: SHA-256 of (language, dependencies text). Every function and version
-- with the same inputs shares it. `digest` names the artifact it produced (SHA-256 of language,
-- build image id and dependencies text, computed by the worker that knows the image id).
CREATE TABLE builds (
    key TEXT PRIMARY KEY,
    language TEXT NOT NULL CHECK (language IN ('python', 'javascript')),
    dependencies TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'building', 'ready', 'failed')),
    -- The attempt the last published job carries; reports of other attempts are refused.
    attempt UUID NOT NULL,
    digest TEXT,
    size_bytes BIGINT,
    log TEXT NOT NULL DEFAULT '',
    worker_id TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ
);

-- An artifact: a gzip'd tar of the dependency tree, in chunks of at most 1 MiB so that neither
-- side ever holds a whole one in memory.
CREATE TABLE artifacts (
    digest TEXT PRIMARY KEY,
    -- SHA-256 of the stored bytes, which a worker checks after downloading.
    content_sha256 TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    unpacked_bytes BIGINT NOT NULL,
    chunks INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE artifact_chunks (
    digest TEXT NOT NULL REFERENCES artifacts (digest) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (digest, seq)
);

ALTER TABLE functions
    ADD COLUMN dependencies TEXT,
    -- The build of this version's dependencies; NULL when it has none.
    ADD COLUMN build_key TEXT REFERENCES builds (key),
    -- While this version's build is not ready: the job spec of the last version that was
    -- runnable, which keeps serving calls (NULL: none was, and calls are refused).
    ADD COLUMN serving JSONB;

CREATE INDEX functions_build_key_idx ON functions (build_key) WHERE build_key IS NOT NULL;
