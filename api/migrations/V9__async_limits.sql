-- `/execute_async` counts a namespace's invocations not yet finished (MAX_PENDING_ASYNC): this
-- keeps that count to the pending rows, however many finished ones are kept.
CREATE INDEX async_invocations_pending_idx
    ON async_invocations (namespace) WHERE status IN ('accepting', 'queued', 'running');

-- While its job waits in a delay queue (a retry, or an attempt set aside for a slot or a
-- worker): when the job is due back. RabbitMQ dead-letters from a delay queue at most once (a
-- broker stopping at that moment drops the message), so the sweeper publishes again the job
-- of a row queued well past this.
ALTER TABLE async_invocations ADD COLUMN due_back TIMESTAMPTZ;
CREATE INDEX async_invocations_due_back_idx
    ON async_invocations (due_back) WHERE status = 'queued' AND due_back IS NOT NULL;
