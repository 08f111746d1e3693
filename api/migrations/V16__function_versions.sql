-- Every saved version of a function (issue 23: the console's versions, diff and roll back).
-- `fields` is the version as a client would send it again (the body of `PUT /functions/{id}`:
-- name, route, language, code, handler, settings), so that rolling back is saving it again
-- through the same checks. A version deployed as a package keeps its package's description
-- under `package` instead of `code`, and cannot be saved again from here (the zip is gone).
-- Only the newest versions are kept (the api prunes at each save); they go with the function.
CREATE TABLE function_versions (
    function_id BIGINT      NOT NULL REFERENCES functions (id) ON DELETE CASCADE,
    version     INTEGER     NOT NULL,
    saved_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    fields      JSONB       NOT NULL,
    PRIMARY KEY (function_id, version)
);

-- The versions saved before this table: each function's current one.
INSERT INTO function_versions (function_id, version, saved_at, fields)
SELECT id, version, updated_at, jsonb_strip_nulls(jsonb_build_object(
    'name', name, 'route', route, 'language', language,
    'code', CASE WHEN package_digest IS NULL THEN code END,
    'handler', handler, 'timeout', timeout, 'runtime', runtime, 'memory_mb', memory_mb,
    'env', env, 'max_concurrency', max_concurrency, 'http_methods', to_jsonb(http_methods),
    'http_auth', http_auth, 'cors', cors, 'dependencies', dependencies,
    'max_retries', max_retries, 'max_event_age_secs', max_event_age_secs,
    'on_success', on_success, 'on_failure', on_failure, 'schedule', schedule,
    'schedule_timezone', schedule_timezone,
    'package', CASE WHEN package_digest IS NOT NULL THEN jsonb_build_object(
        'digest', package_digest, 'zip_bytes', package_zip_bytes, 'files', package_files) END))
FROM functions;
