-- The console's overview (issue 23) reads a namespace's calls over the last hour, day or week.
-- Counting the records themselves costs a sort of every record in the window (about 90 ms for
-- a day and 750 ms for a week of a namespace with 1,000,000 records, measured), so the
-- records are also counted into rollups as they are written: per namespace, per 5 minutes, per
-- duration bin, the calls, errors and cold starts. A week is then at most 2,016 buckets times
-- the bins used. Latency percentiles come from the bins: bin n holds durations from
-- 0.1 ms x 1.1^n up to 0.1 ms x 1.1^(n+1) (bin 0: up to 0.11 ms), so a percentile read as its
-- bin's geometric middle is within 5% of the true value.
--
-- Triggers keep the rollups equal to the records: every insert adds (one grouped upsert per
-- statement, from its transition table), every delete (retention, a namespace's deletion)
-- subtracts. Records are never updated.

CREATE FUNCTION duration_bin(ms DOUBLE PRECISION) RETURNS SMALLINT
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN LEAST(32767, GREATEST(0, floor(ln(GREATEST(ms, 0.1) / 0.1) / ln(1.1))))::smallint;

CREATE TABLE invocation_rollups (
    namespace   TEXT        NOT NULL,
    -- The start of its 5 minutes (date_bin from the Unix epoch).
    bucket      TIMESTAMPTZ NOT NULL,
    bin         SMALLINT    NOT NULL,
    calls       INTEGER     NOT NULL,
    errors      INTEGER     NOT NULL,
    cold_starts INTEGER     NOT NULL,
    PRIMARY KEY (namespace, bucket, bin)
);

INSERT INTO invocation_rollups (namespace, bucket, bin, calls, errors, cold_starts)
SELECT namespace, date_bin('5 minutes', created_at, TIMESTAMPTZ '1970-01-01 00:00:00+00'),
       duration_bin(duration_ms), count(*), count(*) FILTER (WHERE status <> 'success'),
       count(*) FILTER (WHERE cold_start)
FROM invocations
GROUP BY 1, 2, 3;

CREATE FUNCTION invocation_rollups_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO invocation_rollups AS r (namespace, bucket, bin, calls, errors, cold_starts)
    SELECT namespace, date_bin('5 minutes', created_at, TIMESTAMPTZ '1970-01-01 00:00:00+00'),
           duration_bin(duration_ms), count(*), count(*) FILTER (WHERE status <> 'success'),
           count(*) FILTER (WHERE cold_start)
    FROM added
    GROUP BY 1, 2, 3
    ON CONFLICT (namespace, bucket, bin) DO UPDATE
        SET calls = r.calls + EXCLUDED.calls,
            errors = r.errors + EXCLUDED.errors,
            cold_starts = r.cold_starts + EXCLUDED.cold_starts;
    RETURN NULL;
END
$$;

CREATE FUNCTION invocation_rollups_subtract() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE invocation_rollups r
    SET calls = r.calls - g.calls, errors = r.errors - g.errors,
        cold_starts = r.cold_starts - g.cold_starts
    FROM (
        SELECT namespace,
               date_bin('5 minutes', created_at, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket,
               duration_bin(duration_ms) AS bin, count(*) AS calls,
               count(*) FILTER (WHERE status <> 'success') AS errors,
               count(*) FILTER (WHERE cold_start) AS cold_starts
        FROM removed
        GROUP BY 1, 2, 3
    ) g
    WHERE r.namespace = g.namespace AND r.bucket = g.bucket AND r.bin = g.bin;
    -- A second statement: the update's rows are not visible to a delete in the same one.
    DELETE FROM invocation_rollups r
    WHERE r.calls <= 0 AND (r.namespace, r.bucket) IN (
        SELECT DISTINCT namespace,
               date_bin('5 minutes', created_at, TIMESTAMPTZ '1970-01-01 00:00:00+00')
        FROM removed);
    RETURN NULL;
END
$$;

CREATE TRIGGER invocations_rollups_add AFTER INSERT ON invocations
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION invocation_rollups_add();
CREATE TRIGGER invocations_rollups_subtract AFTER DELETE ON invocations
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION invocation_rollups_subtract();
