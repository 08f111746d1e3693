-- HTTP triggers: which methods a function's route answers, who may call it, its CORS settings,
-- and the route's shape (parameter names erased), unique so that no two routes are ambiguous.

ALTER TABLE functions
    ADD COLUMN http_methods TEXT[]
        CHECK (http_methods <@ ARRAY['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']
               AND cardinality(http_methods) > 0),
    ADD COLUMN http_auth    TEXT  NOT NULL DEFAULT 'key' CHECK (http_auth IN ('key', 'none')),
    ADD COLUMN cors         JSONB,
    ADD COLUMN route_shape  TEXT;

-- Existing routes get their shape as the api computes it for valid ones: `{name}` becomes
-- `{}`, a final `{name+}` becomes `{+}`, trailing slashes go. Where two existing routes share a
-- shape, the older function keeps it; the other has none (and no HTTP trigger) until saved.
WITH shaped AS (
    SELECT id,
           COALESCE(NULLIF(regexp_replace(
               regexp_replace(
                   regexp_replace(route, '\{[A-Za-z_][A-Za-z0-9_]*\+\}$', '{+}'),
                   '\{[A-Za-z_][A-Za-z0-9_]*\}', '{}', 'g'),
               '/+$', ''), ''), '/') AS shape
    FROM functions
), ranked AS (
    SELECT id, shape, row_number() OVER (PARTITION BY shape ORDER BY id) AS rank FROM shaped
)
UPDATE functions f SET route_shape = ranked.shape
FROM ranked WHERE ranked.id = f.id AND ranked.rank = 1;

ALTER TABLE functions ADD CONSTRAINT functions_route_shape_key UNIQUE (route_shape);

-- What started each call: `execute` (/execute, /execute_gvisor) or `http` (its route).
ALTER TABLE invocations ADD COLUMN trigger TEXT NOT NULL DEFAULT 'execute';
