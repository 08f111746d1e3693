-- A function's stored test events (issue 22): what `faas test` and the console run against it,
-- in the order given. They are no part of the function's version; they go with the function
-- (ON DELETE CASCADE), and so with its namespace, whose deletion deletes its functions.
-- `event` and `expect` are `json`, not `jsonb`: kept as sent, and a string may hold U+0000
-- (`\u0000`), which jsonb refuses. `expect` NULL: nothing expected (JSON null is expected null).
CREATE TABLE function_tests (
    function_id BIGINT  NOT NULL REFERENCES functions (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL CHECK (position BETWEEN 0 AND 99),
    name        TEXT    NOT NULL CHECK (name ~ '^[A-Za-z0-9._-]{1,100}$'),
    event       JSON    NOT NULL,
    expect      JSON,
    PRIMARY KEY (function_id, position),
    CONSTRAINT function_tests_name_key UNIQUE (function_id, name)
);

-- One function's records within a window (GET /functions/{id}/stats): the other indexes lead
-- with the namespace or the name, which would read every record of a busy namespace's window.
CREATE INDEX invocations_function_id_created_at_idx ON invocations (function_id, created_at DESC);
