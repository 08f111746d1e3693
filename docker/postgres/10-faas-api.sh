#!/usr/bin/env bash
# Run once, when the cluster's Postgres initializes an empty data volume (docker-compose.yml mounts
# it into /docker-entrypoint-initdb.d, which the upstream image and faas-local-postgres both run).
# Makes the api's role and database: `faas_api` logs in with FAAS_API_DB_PASSWORD (stored as a
# SCRAM-SHA-256 verifier), is no superuser and may create no roles or databases; it owns the
# database `faas` and its schema `public`, where its migrations (tables, indexes, plpgsql
# functions) run, and may connect to no other database.
# Executed, or sourced when the file lost its executable bit: no `exit`, no `set`.

# FAAS_API_DB_PASSWORD_FILE (a Swarm secret) instead: the file's content.
if [ -z "${FAAS_API_DB_PASSWORD:-}" ] && [ -n "${FAAS_API_DB_PASSWORD_FILE:-}" ]; then
  FAAS_API_DB_PASSWORD=$(cat "$FAAS_API_DB_PASSWORD_FILE")
fi
if [ -z "${FAAS_API_DB_PASSWORD:-}" ]; then
  echo "faas: FAAS_API_DB_PASSWORD is not set (scripts/make-env.sh writes a .env with every secret)" >&2
  false
else
  # The entrypoints connect over the container's private socket as the superuser.
  psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    --set password="$FAAS_API_DB_PASSWORD" <<'SQL'
SET password_encryption = 'scram-sha-256';
CREATE ROLE faas_api LOGIN PASSWORD :'password'
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
CREATE DATABASE faas OWNER faas_api;
-- Only the owner (and superusers) may connect to faas, and nobody else to the others.
REVOKE ALL ON DATABASE faas FROM PUBLIC;
REVOKE ALL ON DATABASE postgres FROM PUBLIC;
REVOKE CONNECT ON DATABASE template1 FROM PUBLIC;
\connect faas
-- Postgres 15+ already gives public to the database owner; 14 and older give it to postgres,
-- with CREATE for everyone.
ALTER SCHEMA public OWNER TO faas_api;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
SQL
fi
