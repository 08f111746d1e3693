#!/usr/bin/env bash
# Enables on this host's RabbitMQ (when rabbitmq-plugins is here) the plugins the platform
# needs beside the broker itself, as the cluster's broker has them (docker/rabbitmq/enabled_plugins):
# - rabbitmq_consistent_hash_exchange: jobs go to their function's home worker through a
#   consistent-hash exchange (DESIGN §21); the api and the workers refuse to start without it;
# - rabbitmq_prometheus: the broker's own metrics (queue depth), which the dashboards test reads.
# Called by scripts/test.sh and bench/run.sh once the broker answers.
set -euo pipefail
command -v rabbitmq-plugins >/dev/null 2>&1 || exit 0
enabled=$(rabbitmq-plugins list --enabled --minimal 2>/dev/null || true)
for plugin in rabbitmq_consistent_hash_exchange rabbitmq_prometheus; do
  if ! grep -qx "$plugin" <<<"$enabled"; then
    printf '[local-broker] enabling RabbitMQ plugin %s\n' "$plugin" >&2
    rabbitmq-plugins enable --quiet "$plugin" >/dev/null
  fi
done
