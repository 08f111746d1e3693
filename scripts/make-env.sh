#!/usr/bin/env bash
# Writes the env file of the compose cluster: .env beside docker-compose.yml (or FILE), a copy of
# .env.example with a fresh random value for every secret. Never overwrites a file: remove the
# old one first (and see README, "The cluster", before changing the secrets of a cluster that
# has already started). The file is readable by its owner only.
# Usage: scripts/make-env.sh [FILE]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-$root/.env}
log() { printf '[make-env] %s\n' "$*" >&2; }

# Name and random bytes of each secret. The passwords end up in amqp:// and postgres:// URLs,
# hence hex.
secrets=(
  POSTGRES_PASSWORD:16
  POSTGRES_API_PASSWORD:16
  RABBITMQ_API_PASSWORD:16
  RABBITMQ_WORKER_PASSWORD:16
  GRAFANA_ADMIN_PASSWORD:16
  ADMIN_KEY:32
  WORKER_TOKEN:32
)

if [ -e "$target" ]; then
  log "$target exists; not overwriting it (remove it first to make a new one)"
  exit 1
fi

random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

content=$(cat "$root/.env.example")
for entry in "${secrets[@]}"; do
  name=${entry%%:*} bytes=${entry##*:}
  grep -q "^$name=$" <<<"$content" || { log "error: .env.example has no empty line $name="; exit 1; }
  content=$(sed "s/^$name=\$/$name=$(random_hex "$bytes")/" <<<"$content")
done

# noclobber: a file that appeared meanwhile is not overwritten either.
(umask 077 && set -o noclobber && printf '%s\n' "$content" >"$target")
log "wrote $target with random ${secrets[*]%%:*}"
log "Grafana: log in as admin with its GRAFANA_ADMIN_PASSWORD"
log "the api's bootstrap admin key: its ADMIN_KEY"
