-- The web console's sessions (issue 23). The cookie holds a random id; the table keeps only
-- its SHA-256, so that reading the table signs nobody in. A session with no key is a sign-in
-- form's (its CSRF token guards the sign-in POST; signing in replaces it with a new id). A
-- signed-in session keeps the key's id and the SHA-256 of its secret (what the keys table
-- keeps too), so that every request re-checks the key: a revoked or expired key ends it.
CREATE TABLE console_sessions (
    id_hash     BYTEA       PRIMARY KEY,
    csrf_token  TEXT        NOT NULL,
    key_id      TEXT,
    secret_hash BYTEA,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    CHECK ((key_id IS NULL) = (secret_hash IS NULL))
);
CREATE INDEX console_sessions_expires_at_idx ON console_sessions (expires_at);
