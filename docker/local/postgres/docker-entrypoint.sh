#!/usr/bin/env bash
# Entrypoint of faas-local-postgres: the parts of the official image's docker-entrypoint.sh that
# this project relies on. On first start (no $PGDATA/PG_VERSION) it runs initdb as postgres,
# allows remote connections with POSTGRES_HOST_AUTH_METHOD (trust needs no password), creates
# POSTGRES_DB and runs /docker-entrypoint-initdb.d/*.{sh,sql}; then postgres runs in the
# foreground as postgres.
set -Eeuo pipefail

log() { printf '[entrypoint] %s\n' "$*" >&2; }

# `docker run IMAGE -c fsync=off` means postgres with those options.
if [ "${1:0:1}" = '-' ]; then
  set -- postgres "$@"
fi

if [ "$1" != postgres ]; then
  exec "$@"
fi

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [ "$(id -u)" = 0 ]; then
  # A fresh volume or bind mount is root's; postgres refuses a data directory it does not own.
  mkdir -p "$PGDATA"
  find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
  chmod 700 "$PGDATA"
  install -d -o postgres -g postgres -m 3777 /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups \
    env HOME=/var/lib/postgresql "${BASH_SOURCE[0]}" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  # POSTGRES_PASSWORD_FILE, as in the official image (Swarm secrets).
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE")
  fi
  POSTGRES_USER=${POSTGRES_USER:-postgres}
  POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
  auth=${POSTGRES_HOST_AUTH_METHOD:-}
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    log "the database is uninitialized and no superuser password is set:"
    log "set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust to allow connections without one"
    exit 1
  fi
  [ -n "$auth" ] || auth=scram-sha-256

  initdb_args=(--username="$POSTGRES_USER" --encoding=UTF8 --locale=C.UTF-8)
  pwfile=
  if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    pwfile=$(umask 077 && mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb_args+=(--pwfile="$pwfile")
  fi
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words, as in the official image.
  initdb "${initdb_args[@]}" ${POSTGRES_INITDB_ARGS:-} >&2
  [ -z "$pwfile" ] || rm -f "$pwfile"
  printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

  initdb_files=(/docker-entrypoint-initdb.d/*)
  if [ "$POSTGRES_DB" != postgres ] || [ -e "${initdb_files[0]}" ]; then
    # The temporary server listens on a private socket only, so that `pg_isready` (the
    # healthcheck) does not report ready before the initialization is done.
    export PGHOST
    PGHOST=$(mktemp -d)
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories='$PGHOST'" start >&2
    export PGUSER=$POSTGRES_USER PGDATABASE=postgres
    psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc)
    if [ "$POSTGRES_DB" != postgres ]; then
      "${psql[@]}" --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";' >&2
    fi
    export PGDATABASE=$POSTGRES_DB
    for f in "${initdb_files[@]}"; do
      [ -e "$f" ] || continue
      # shellcheck disable=SC1090 # the scripts are the user's
      case "$f" in
        *.sh) log "running $f"; if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
        *.sql) log "running $f"; "${psql[@]}" -f "$f" >&2 ;;
        *.sql.gz) log "running $f"; gunzip -c "$f" | "${psql[@]}" >&2 ;;
        *) log "ignoring $f" ;;
      esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >&2
    rmdir "$PGHOST" 2>/dev/null || true
    unset PGHOST PGUSER PGDATABASE
  fi
  log "initialization done"
fi

exec "$@"
