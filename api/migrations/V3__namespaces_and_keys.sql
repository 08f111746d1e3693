-- Namespaces own functions; API keys belong to a namespace and carry scopes.

CREATE TABLE namespaces (
    name             TEXT        PRIMARY KEY CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    -- Runtimes its functions may run on; ['gvisor'] makes it untrusted (never runc).
    allowed_runtimes TEXT[]      NOT NULL DEFAULT ARRAY['docker', 'gvisor']
                                 CHECK (allowed_runtimes <@ ARRAY['docker', 'gvisor']
                                        AND cardinality(allowed_runtimes) > 0),
    -- Calls of all its functions at once (NULL: no limit), counted with the leases below.
    max_concurrency  INTEGER     CHECK (max_concurrency BETWEEN 1 AND 100000),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO namespaces (name) VALUES ('default');

-- Every existing function moves to `default`. Names are unique within a namespace; routes stay
-- unique across all of them (they are the public HTTP paths of every function).
ALTER TABLE functions
    ADD COLUMN namespace TEXT NOT NULL DEFAULT 'default' REFERENCES namespaces (name);
ALTER TABLE functions ALTER COLUMN namespace DROP DEFAULT;
ALTER TABLE functions DROP CONSTRAINT functions_name_key;
ALTER TABLE functions ADD CONSTRAINT functions_namespace_name_key UNIQUE (namespace, name);

-- Records carry their namespace (they outlive their function, so it is copied, not joined).
ALTER TABLE invocations ADD COLUMN namespace TEXT NOT NULL DEFAULT 'default';
CREATE INDEX invocations_namespace_created_at_idx ON invocations (namespace, created_at DESC);

-- A call may hold a lease of its function and one of its namespace.
ALTER TABLE leases DROP CONSTRAINT leases_pkey;
ALTER TABLE leases ADD PRIMARY KEY (invocation_id, scope);

-- Only a SHA-256 of each key's secret is kept; the key itself is shown once, when made.
CREATE TABLE api_keys (
    id          UUID        PRIMARY KEY,
    namespace   TEXT        NOT NULL REFERENCES namespaces (name) ON DELETE CASCADE,
    scopes      TEXT[]      NOT NULL CHECK (scopes <@ ARRAY['admin', 'manage', 'invoke', 'read']
                                            AND cardinality(scopes) > 0),
    description TEXT        NOT NULL DEFAULT '',
    secret_hash BYTEA       NOT NULL CHECK (length(secret_hash) = 32),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX api_keys_namespace_idx ON api_keys (namespace);
