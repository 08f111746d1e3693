-- Invocation records carry what the call printed, and a storage order that `GET
-- /invocations/stream` resumes from (DESIGN §16a).

-- At most 16 KiB of a call's logs (cut on a character boundary, `logs_truncated` then set);
-- NULL when no worker answered.
ALTER TABLE invocations
    ADD COLUMN logs TEXT,
    ADD COLUMN logs_truncated BOOLEAN NOT NULL DEFAULT false,
    -- Which attempt of its invocation the record is: 1 for sync calls, counting up for the
    -- attempts of async invocations, which are recorded here too (trigger `async` or
    -- `schedule`), so that a stream shows every call.
    ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1,
    -- The order records were stored in. The record writer takes one advisory lock around its
    -- insert, so the numbers are also committed in this order: a reader that sees `seq` N
    -- already sees every record below N.
    ADD COLUMN seq BIGSERIAL;

-- An async invocation has one record per attempt; a second record of the same attempt (a run
-- taken over after its api died) is dropped, as a second record of a sync call is.
ALTER TABLE invocations DROP CONSTRAINT invocations_pkey;
ALTER TABLE invocations ADD PRIMARY KEY (id, attempt);

-- A stream's replay and resume: a namespace's records after a `seq`, in order.
CREATE INDEX invocations_namespace_seq_idx ON invocations (namespace, seq);
