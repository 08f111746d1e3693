-- Per-function concurrency limit (NULL: none) and the leases that count calls against it.
ALTER TABLE functions
    ADD COLUMN max_concurrency INTEGER CHECK (max_concurrency BETWEEN 1 AND 1000);

-- One row per running call that holds a slot of a limited scope ('function:<id>'; namespaces
-- can use their own scopes). A lease outlives a crashed api only until it expires.
CREATE TABLE leases (
    invocation_id UUID        PRIMARY KEY,
    scope         TEXT        NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX leases_scope_idx ON leases (scope, expires_at);

-- Takes a slot of `scope` for `invocation` until `expires` if fewer than `max` are held, in
-- one round trip. The advisory lock (held to the end of the caller's transaction, i.e. this
-- statement's) serialises the count and the insert per scope across every api replica.
CREATE FUNCTION faas_acquire_lease(scope text, invocation uuid, expires timestamptz, max int)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    held int;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext(scope));
    DELETE FROM leases WHERE leases.scope = faas_acquire_lease.scope AND expires_at < now();
    SELECT count(*) INTO held FROM leases WHERE leases.scope = faas_acquire_lease.scope;
    IF held >= max THEN
        RETURN false;
    END IF;
    INSERT INTO leases (invocation_id, scope, expires_at) VALUES (invocation, scope, expires);
    RETURN true;
END;
$$;
