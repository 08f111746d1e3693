-- The console's overview (issue 23) reads a namespace's calls over the last hour, day or week.
-- Counting the records themselves costs a sort of every record in the window (about 90 ms for
-- a day and 750 ms for a week of a namespace with 1,000,000 records, measured), so the
-- records are also counted into rollups as they are written: per namespace, per 5 minutes and
-- per hour (`width`, in seconds), per duration bin, the calls, errors and cold starts. An hour
-- reads 12 five-minute buckets, a day or a week 24 or 168 hourly ones, times the bins used. Latency percentiles come from the bins: bin n holds durations from
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
    -- 300 or 3600: the seconds its bucket spans.
    width       INTEGER     NOT NULL,
    -- The start of its bucket (date_bin from the Unix epoch).
    bucket      TIMESTAMPTZ NOT NULL,
    bin         SMALLINT    NOT NULL,
    calls       INTEGER     NOT NULL,
    errors      INTEGER     NOT NULL,
    cold_starts INTEGER     NOT NULL,
    PRIMARY KEY (namespace, width, bucket, bin)
);

WITH five AS (
    SELECT namespace,
           date_bin('5 minutes', created_at, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket,
           duration_bin(duration_ms) AS bin, count(*) AS calls,
           count(*) FILTER (WHERE status <> 'success') AS errors,
           count(*) FILTER (WHERE cold_start) AS cold_starts
    FROM invocations
    GROUP BY 1, 2, 3
)
INSERT INTO invocation_rollups (namespace, width, bucket, bin, calls, errors, cold_starts)
SELECT namespace, 300, bucket, bin, calls, errors, cold_starts FROM five
UNION ALL
SELECT namespace, 3600, date_bin('1 hour', bucket, TIMESTAMPTZ '1970-01-01 00:00:00+00'), bin,
       sum(calls), sum(errors), sum(cold_starts)
FROM five
GROUP BY 1, 3, 4;

-- Each added record is binned once, per 5 minutes; the hours add up those 5 minutes.
CREATE FUNCTION invocation_rollups_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH five AS (
        SELECT namespace,
               date_bin('5 minutes', created_at, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket,
               duration_bin(duration_ms) AS bin, count(*) AS calls,
               count(*) FILTER (WHERE status <> 'success') AS errors,
               count(*) FILTER (WHERE cold_start) AS cold_starts
        FROM added
        GROUP BY 1, 2, 3
    )
    INSERT INTO invocation_rollups AS r (namespace, width, bucket, bin, calls, errors, cold_starts)
    SELECT namespace, 300, bucket, bin, calls, errors, cold_starts FROM five
    UNION ALL
    SELECT namespace, 3600, date_bin('1 hour', bucket, TIMESTAMPTZ '1970-01-01 00:00:00+00'), bin,
           sum(calls), sum(errors), sum(cold_starts)
    FROM five
    GROUP BY 1, 3, 4
    ON CONFLICT (namespace, width, bucket, bin) DO UPDATE
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
        WITH five AS (
            SELECT namespace,
                   date_bin('5 minutes', created_at, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket,
                   duration_bin(duration_ms) AS bin, count(*) AS calls,
                   count(*) FILTER (WHERE status <> 'success') AS errors,
                   count(*) FILTER (WHERE cold_start) AS cold_starts
            FROM removed
            GROUP BY 1, 2, 3
        )
        SELECT namespace, 300 AS width, bucket, bin, calls, errors, cold_starts FROM five
        UNION ALL
        SELECT namespace, 3600, date_bin('1 hour', bucket, TIMESTAMPTZ '1970-01-01 00:00:00+00'),
               bin, sum(calls), sum(errors), sum(cold_starts)
        FROM five
        GROUP BY 1, 3, 4
    ) g
    WHERE r.namespace = g.namespace AND r.width = g.width AND r.bucket = g.bucket
      AND r.bin = g.bin;
    -- A second statement: the update's rows are not visible to a delete in the same one.
    DELETE FROM invocation_rollups r
    WHERE r.calls <= 0 AND (r.namespace, r.width, r.bucket) IN (
        SELECT DISTINCT namespace, 300,
               date_bin('5 minutes', created_at, TIMESTAMPTZ '1970-01-01 00:00:00+00')
        FROM removed
        UNION
        SELECT DISTINCT namespace, 3600,
               date_bin('1 hour', created_at, TIMESTAMPTZ '1970-01-01 00:00:00+00')
        FROM removed);
    RETURN NULL;
END
$$;

CREATE TRIGGER invocations_rollups_add AFTER INSERT ON invocations
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION invocation_rollups_add();
CREATE TRIGGER invocations_rollups_subtract AFTER DELETE ON invocations
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION invocation_rollups_subtract();
