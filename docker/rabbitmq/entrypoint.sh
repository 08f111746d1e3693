#!/bin/sh
# Entrypoint of the cluster's RabbitMQ, mounted by docker-compose.yml into the upstream image and
# into faas-local-rabbitmq alike. At every start of the server it writes the broker's users and
# their permissions, with the passwords from the environment, into the definitions file that
# rabbitmq.conf imports at boot (before any listener opens); then it runs the image's own
# entrypoint. A node that imports definitions at boot never creates the default `guest` user.
#
# Two users, one per service, with only what the code in common/src/broker/topology.rs,
# api/src/invoker.rs and worker/src/consumer.rs does (the names assume an empty QUEUE_PREFIX,
# which is what compose runs with). RabbitMQ checks one regex per kind of access against the
# name of the queue or exchange concerned (the default exchange is named `amq.default`):
#   configure  exchange.declare, queue.declare (server-named queues are `amq.gen-...`)
#   write      basic.publish (the exchange), queue.bind (the queue)
#   read       basic.consume (the queue), queue.bind (the exchange)
# Consuming direct reply-to (`amq.rabbitmq.reply-to`) needs no permission.
#
# faas-api: declares the exchanges faas.invoke, faas.events and faas.records, the job queues
#   faas.invoke.{docker,gvisor} (and binds them) and the unavailable queues (to count their
#   consumers); declares the home exchanges faas.home.{docker,gvisor} (consistent-hash, with the
#   alternate exchange faas.spill.{docker,gvisor}, a fanout bound to the job queue) and
#   publishes jobs to them (publishing through an alternate exchange takes write on it too), function events to faas.events and stored
#   invocation records (every namespace's logs: workers get nowhere near them) to
#   faas.records; binds and consumes its own amq.gen-* events queue (to both); declares the build exchange and queue (both named
#   faas.build), binds them and publishes build jobs to the exchange; declares the async
#   exchange faas.async, the quorum queue faas.async, the dead queue faas.dead and the retry
#   delay queues faas.async.delay.{secs} (the broker dead-letters those back to faas.async),
#   binds them, publishes async jobs to faas.async and consumes the queue faas.async (the api
#   runs async jobs itself); declaring a queue with a dead-letter exchange takes read on the
#   queue (and write on that exchange). It cannot consume jobs, and has no write on the default exchange.
# faas-worker: declares the same topology; declares, binds (to faas.home.{runtime}; unbinds it when
#   it stops) and consumes
#   its own home queue faas.home.{runtime}.{worker id}, dead-lettering to faas.spill.{runtime}
#   (which takes write on that exchange and read on the queue); consumes a job queue or an
#   unavailable queue, and the build queue (which it cannot bind);
#   publishes replies to the default exchange (routing key: the caller's reply-to name); binds
#   and consumes its own amq.gen-* events queue. It cannot publish jobs or events to the
#   exchanges, nor see the async queues. Write on amq.default does let it put a message into any queue by name (RabbitMQ
#   cannot restrict the routing keys of the default exchange, and direct reply-to needs it); a
#   worker holds the host's Docker socket, which is root on the host, anyway.
set -eu

API_CONFIGURE='^(faas\.(invoke|events|records|build|async|dead)|faas\.(invoke|unavailable|home|spill)\.(docker|gvisor)|faas\.async\.delay\.[0-9]+|amq\.gen-.*)$'
API_WRITE='^(faas\.(invoke|events|records|build|async|dead)|faas\.(invoke|home|spill)\.(docker|gvisor)|faas\.async\.delay\.[0-9]+|amq\.gen-.*)$'
API_READ='^(faas\.(invoke|events|records|build|async)|faas\.(home|spill)\.(docker|gvisor)|faas\.async\.delay\.[0-9]+|amq\.gen-.*)$'
WORKER_CONFIGURE='^(faas\.(invoke|events|build)|faas\.(invoke|unavailable|home|spill)\.(docker|gvisor)|faas\.home\.(docker|gvisor)\..+|amq\.gen-.*)$'
WORKER_WRITE='^(faas\.(invoke|spill)\.(docker|gvisor)|faas\.home\.(docker|gvisor)\..+|amq\.gen-.*|amq\.default)$'
WORKER_READ='^(faas\.(invoke|events|build)|faas\.(invoke|unavailable|home|spill)\.(docker|gvisor)|faas\.home\.(docker|gvisor)\..+|amq\.gen-.*)$'

# Where rabbitmq.conf's load_definitions points.
DEFINITIONS=/run/faas-rabbitmq/definitions.json

fail() {
  printf 'faas-rabbitmq: %s\n' "$*" >&2
  exit 1
}

# The passwords go into amqp:// URLs (docker-compose.yml) and into JSON here: URL-safe
# characters only, so that neither needs escaping.
check_password() { # NAME VALUE
  case $2 in
    '') fail "$1 is not set (scripts/make-env.sh writes a .env with every secret)" ;;
    *[!A-Za-z0-9._~-]*) fail "$1 may only hold letters, digits and . _ ~ -" ;;
  esac
}

json_string() {
  printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

write_definitions() {
  check_password FAAS_API_AMQP_PASSWORD "${FAAS_API_AMQP_PASSWORD:-}"
  check_password FAAS_WORKER_AMQP_PASSWORD "${FAAS_WORKER_AMQP_PASSWORD:-}"
  dir=$(dirname "$DEFINITIONS")
  mkdir -p "$dir"
  # Readable by the broker (which runs as rabbitmq) and nobody else.
  if [ "$(id -u)" = 0 ]; then
    chown rabbitmq:rabbitmq "$dir"
  fi
  chmod 700 "$dir"
  (
    umask 077
    cat >"$DEFINITIONS.tmp" <<EOF
{
  "vhosts": [{"name": "/"}],
  "users": [
    {"name": "faas-api", "password": "$FAAS_API_AMQP_PASSWORD", "tags": ""},
    {"name": "faas-worker", "password": "$FAAS_WORKER_AMQP_PASSWORD", "tags": ""}
  ],
  "permissions": [
    {"user": "faas-api", "vhost": "/",
     "configure": $(json_string "$API_CONFIGURE"),
     "write": $(json_string "$API_WRITE"),
     "read": $(json_string "$API_READ")},
    {"user": "faas-worker", "vhost": "/",
     "configure": $(json_string "$WORKER_CONFIGURE"),
     "write": $(json_string "$WORKER_WRITE"),
     "read": $(json_string "$WORKER_READ")}
  ]
}
EOF
  )
  if [ "$(id -u)" = 0 ]; then
    chown rabbitmq:rabbitmq "$DEFINITIONS.tmp"
  fi
  mv "$DEFINITIONS.tmp" "$DEFINITIONS"
}

# NAME_FILE (Swarm secrets, /run/secrets/...) instead of NAME: the file's content, without its
# trailing newline. Both set is a mistake.
file_env() { # NAME
  eval "value=\${$1:-} file=\${$1_FILE:-}"
  if [ -n "$file" ]; then
    [ -z "$value" ] || fail "set $1 or $1_FILE, not both"
    [ -r "$file" ] || fail "$1_FILE=$file cannot be read"
    export "$1=$(cat "$file")"
  fi
  unset "$1_FILE"
}

if [ "${1:-}" = rabbitmq-server ]; then
  file_env FAAS_API_AMQP_PASSWORD
  file_env FAAS_WORKER_AMQP_PASSWORD
  write_definitions
fi
# The passwords stay out of the broker process' environment.
unset FAAS_API_AMQP_PASSWORD FAAS_WORKER_AMQP_PASSWORD
exec docker-entrypoint.sh "$@"
