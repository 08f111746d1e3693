-- Fair shares of builds between namespaces (DESIGN §19): each build is charged to the namespace
-- whose save (re)started its current attempt, and is queued only while that namespace has fewer
-- than BUILD_NAMESPACE_CONCURRENCY builds queued or building and has not used
-- BUILD_NAMESPACE_SECONDS_PER_HOUR of build time in the last hour; until then it is held
-- `pending`, unpublished, and the api publishes it when one of the namespace's builds ends.

-- No foreign key: a build is shared by key with every namespace that names the same
-- dependencies, and outlives the namespace that first needed it.
ALTER TABLE builds
    ADD COLUMN namespace TEXT NOT NULL DEFAULT 'default',
    -- When the attempt's job was published; NULL: held, not yet published.
    ADD COLUMN published_at TIMESTAMPTZ;

-- Every build that existed before was published when it was made.
UPDATE builds SET published_at = created_at;

-- A namespace's builds (under way, and the last hour's), read at every save that starts one.
CREATE INDEX builds_namespace_idx ON builds (namespace);
-- The held builds, which every release pass looks for.
CREATE INDEX builds_held_idx ON builds (namespace, created_at)
    WHERE status = 'pending' AND published_at IS NULL;
