-- `/execute_async` counts a namespace's invocations not yet finished (MAX_PENDING_ASYNC) on
-- every call: this keeps that count to the pending rows, however many finished ones are kept.
CREATE INDEX async_invocations_pending_idx
    ON async_invocations (namespace) WHERE status IN ('accepting', 'queued', 'running');
