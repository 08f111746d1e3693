-- Per-namespace quotas (issue 21): NULL is the platform's default (QUOTA_* settings;
-- MAX_PENDING_ASYNC for pending_async, which a namespace can only narrow).
ALTER TABLE namespaces
    ADD COLUMN quota_functions      BIGINT CHECK (quota_functions BETWEEN 0 AND 9007199254740992),
    ADD COLUMN quota_keys           BIGINT CHECK (quota_keys BETWEEN 0 AND 9007199254740992),
    ADD COLUMN quota_pending_async  BIGINT CHECK (quota_pending_async BETWEEN 0 AND 9007199254740992),
    ADD COLUMN quota_artifact_bytes BIGINT CHECK (quota_artifact_bytes BETWEEN 0 AND 9007199254740992),
    ADD COLUMN quota_result_bytes   BIGINT CHECK (quota_result_bytes BETWEEN 0 AND 9007199254740992),
    -- Bytes of `result` and `logs` in its async invocations, kept by every statement that
    -- writes or deletes them (recording an attempt, retention), so that the quota is read, not
    -- summed over a week of rows.
    ADD COLUMN result_bytes_used    BIGINT NOT NULL DEFAULT 0;

UPDATE namespaces n SET result_bytes_used = coalesce((
    SELECT sum(coalesce(octet_length(a.result), 0) + coalesce(octet_length(a.logs), 0))
    FROM async_invocations a WHERE a.namespace = n.name), 0);
