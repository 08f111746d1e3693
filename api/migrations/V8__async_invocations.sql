-- Asynchronous invocations (DESIGN section 10): what a function does with a failed async call,
-- where its outcome goes, and when it runs by itself.
ALTER TABLE functions
    ADD COLUMN max_retries        INTEGER NOT NULL DEFAULT 2 CHECK (max_retries BETWEEN 0 AND 5),
    ADD COLUMN max_event_age_secs INTEGER NOT NULL DEFAULT 21600
        CHECK (max_event_age_secs BETWEEN 60 AND 21600),
    ADD COLUMN on_success         TEXT,
    ADD COLUMN on_failure         TEXT,
    ADD COLUMN schedule           TEXT,
    ADD COLUMN schedule_timezone  TEXT NOT NULL DEFAULT 'UTC';
CREATE INDEX functions_schedule_idx ON functions (id) WHERE schedule IS NOT NULL;

-- One row per async (or scheduled) invocation: the source of truth of its state. The queue
-- message only says "run attempt N of invocation X"; a message whose attempt does not match
-- the row is a duplicate and is dropped, which is what makes the stored outcome exactly-once.
-- Like the records, a row outlives its function: no foreign key, the name is copied.
CREATE TABLE async_invocations (
    id                UUID PRIMARY KEY,
    namespace         TEXT        NOT NULL,
    function_id       BIGINT      NOT NULL,
    function_name     TEXT        NOT NULL,
    mode              TEXT        NOT NULL CHECK (mode IN ('async', 'schedule')),
    -- accepting: stored, its job not yet confirmed by the broker (shown as queued).
    status            TEXT        NOT NULL CHECK (status IN
        ('accepting', 'queued', 'running', 'succeeded', 'dead_lettered')),
    event             TEXT        NOT NULL,
    -- Attempts started; the message of attempt N claims the row only when it is N - 1.
    attempts          INTEGER     NOT NULL DEFAULT 0,
    -- Attempts before the last redrive: a redriven invocation gets its retries afresh.
    retry_floor       INTEGER     NOT NULL DEFAULT 0,
    -- While running: when the claim lapses and a redelivered job may take the attempt over.
    claimed_until     TIMESTAMPTZ,
    idempotency_key   TEXT,
    function_version  INTEGER,
    runtime           TEXT,
    result            TEXT,
    error             JSONB,
    logs              TEXT,
    logs_truncated    BOOLEAN     NOT NULL DEFAULT false,
    timing            JSONB,
    duration_ms       DOUBLE PRECISION,
    worker_id         TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Destinations invoked one after another to reach this one (0: called by a client or a
    -- schedule): a chain stops at 16, as Lambda stops recursive loops.
    chain_depth       INTEGER     NOT NULL DEFAULT 0,
    -- Age counts from here after a redrive (max_event_age_secs).
    redriven_at       TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ
);
CREATE UNIQUE INDEX async_invocations_idempotency_key
    ON async_invocations (namespace, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX async_invocations_namespace_created_idx
    ON async_invocations (namespace, created_at DESC);
CREATE INDEX async_invocations_waiting_idx
    ON async_invocations (updated_at) WHERE status IN ('accepting', 'queued');
CREATE INDEX async_invocations_finished_idx
    ON async_invocations (finished_at) WHERE finished_at IS NOT NULL;

-- Every attempt of an async invocation, as it ended.
CREATE TABLE invocation_attempts (
    invocation_id UUID        NOT NULL REFERENCES async_invocations (id) ON DELETE CASCADE,
    attempt       INTEGER     NOT NULL,
    -- A reply status (success, error, timeout, oom, crashed, ...) or no_reply / not_run.
    outcome       TEXT        NOT NULL,
    error         JSONB,
    worker_id     TEXT,
    timing        JSONB,
    duration_ms   DOUBLE PRECISION,
    cold_start    BOOLEAN     NOT NULL DEFAULT false,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (invocation_id, attempt)
);
