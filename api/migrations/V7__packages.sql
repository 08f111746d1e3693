-- Deployment packages (`code_zip`): a function's files as an artifact (a gzip'd tar in
-- `artifacts`, named by its content), which workers fetch and mount as they do dependencies.
-- A packaged function's `code` is the empty string.
ALTER TABLE functions
    ADD COLUMN package_digest TEXT REFERENCES artifacts (digest),
    -- Bytes of the zip as uploaded, and its regular files, as the API shows them.
    ADD COLUMN package_zip_bytes BIGINT,
    ADD COLUMN package_files INTEGER;

CREATE INDEX functions_package_digest_idx ON functions (package_digest)
    WHERE package_digest IS NOT NULL;
