#!/bin/sh
# Entrypoint of faas-local-rabbitmq: runs rabbitmq-server in the foreground as rabbitmq, with
# logs on stdout. Any other command runs as given.
set -eu

if [ "${1:-}" != rabbitmq-server ]; then
  exec "$@"
fi
shift

data=/var/lib/rabbitmq
if [ "$(id -u)" = 0 ]; then
  # A fresh volume or bind mount is root's.
  mkdir -p "$data" /var/log/rabbitmq
  find "$data" /var/log/rabbitmq \! -user rabbitmq -exec chown rabbitmq:rabbitmq '{}' +
  exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups "$0" rabbitmq-server "$@"
fi

# The cookie lives in the data volume, so it survives a new container and a new hostname.
# Made here rather than by the broker, so that a healthcheck run during startup cannot
# create a different one first.
cookie=$data/.erlang.cookie
if [ ! -s "$cookie" ]; then
  (umask 077 && head -c 30 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr 'a-f' 'A-F' >"$cookie")
fi
chmod 400 "$cookie"

# Debian's /usr/sbin/rabbitmq-server sends the output to /var/log/rabbitmq/startup_log;
# the script behind it keeps it on stdout.
export HOME=$data
exec /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
