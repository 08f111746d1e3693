CREATE TABLE functions (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT        NOT NULL,
    route       TEXT        NOT NULL,
    language    TEXT        NOT NULL CHECK (language IN ('python', 'javascript')),
    code        TEXT        NOT NULL,
    timeout     INTEGER     NOT NULL CHECK (timeout BETWEEN 1 AND 900),
    runtime     TEXT        NOT NULL DEFAULT 'docker' CHECK (runtime IN ('docker', 'gvisor')),
    memory_mb   INTEGER     NOT NULL DEFAULT 128,
    env         JSONB       NOT NULL DEFAULT '{}'::jsonb,
    version     INTEGER     NOT NULL DEFAULT 1,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT functions_name_key UNIQUE (name),
    CONSTRAINT functions_route_key UNIQUE (route)
);

-- Records outlive their function: no foreign key, and the name is copied.
CREATE TABLE invocations (
    id                UUID PRIMARY KEY,
    function_id       BIGINT           NOT NULL,
    function_name     TEXT             NOT NULL,
    function_version  INTEGER          NOT NULL,
    runtime           TEXT             NOT NULL,
    status            TEXT             NOT NULL,
    cold_start        BOOLEAN          NOT NULL,
    duration_ms       DOUBLE PRECISION NOT NULL,
    queue_ms          DOUBLE PRECISION,
    init_ms           DOUBLE PRECISION,
    run_ms            DOUBLE PRECISION,
    worker_id         TEXT,
    error             JSONB,
    created_at        TIMESTAMPTZ      NOT NULL DEFAULT now()
);
CREATE INDEX invocations_created_at_idx ON invocations (created_at DESC);
CREATE INDEX invocations_function_created_at_idx ON invocations (function_name, created_at DESC);
