#!/usr/bin/env bash
# Builds the platform's images, pushes them to REGISTRY, makes the Swarm secrets and deploys
# deploy/swarm/stack.yml as the stack STACK, then waits until every service runs.
# Run it on a manager node of a swarm (`docker swarm init`) whose nodes have:
#   - Docker, and for gVisor workers runsc registered in /etc/docker/daemon.json (scripts/setup.sh
#     does both on Debian); access to REGISTRY (a registry on 127.0.0.0/8 needs no TLS, any other
#     needs TLS or the daemon's insecure-registries);
#   - the directory /var/lib/faas/deps (the workers' dependency cache, bound into containers);
#   - labels: one node `faas.state=true` (Postgres, RabbitMQ, Prometheus and Grafana live there,
#     with their volumes), and `faas.runtime.docker=true` / `faas.runtime.gvisor=true` on the nodes
#     that run each worker, e.g.
#       docker node update --label-add faas.state=true --label-add faas.runtime.docker=true NODE
# Settings (environment):
#   REGISTRY            where the images go and the nodes pull from (required), e.g. 10.0.0.5:5000
#   TAG                 the images' tag (latest)
#   STACK               the stack's name (faas)
#   SECRETS_FILE        the secrets' values, written with random ones when missing, readable by
#                       its owner only (deploy/swarm/secrets.env; keep it: the admin key is there)
#   PUBLISH_MODE / ENDPOINT_MODE   ingress/vip (routing mesh) or host/dnsrr; by default host/dnsrr
#                       when this kernel has no IPVS (/proc/net/ip_vs), else ingress/vip
#   OVERLAY_ENCRYPTION  on or off: off drops the overlay networks' IPsec encryption, for kernels
#                       without ESP; by default off when this kernel lacks CONFIG_INET_ESP
#   SKIP_BUILD=1        push the images as they are
#   API_REPLICAS, API_PORT, FUNCTIONS_PORT, PROMETHEUS_PORT, GRAFANA_PORT, WORKER_MEMORY_MB, ...
#                       as in the stack file
# Where upstream images cannot be pulled, the Debian-package stand-ins of scripts/local-images.sh
# are built and pushed too (Postgres, RabbitMQ, Prometheus; no Grafana: GRAFANA_REPLICAS=0).
# Undo: `docker stack rm faas` (volumes and secrets stay; `docker volume rm` on the state node).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[swarm-up] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

: "${REGISTRY:?REGISTRY names the registry the nodes pull from (e.g. REGISTRY=10.0.0.5:5000)}"
export REGISTRY TAG=${TAG:-latest}
STACK=${STACK:-faas}
SECRETS_FILE=${SECRETS_FILE:-deploy/swarm/secrets.env}

[ "$(docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)" = true ] ||
  die "this Docker is not a swarm manager (docker swarm init, or run this on a manager)"

# The nodes' labels: the stack would wait forever for a node that none of them names.
labels=$(docker node ls -q | xargs docker node inspect --format '{{.Description.Hostname}} {{json .Spec.Labels}}')
grep -q '"faas.state":"true"' <<<"$labels" || die "no node is labelled faas.state=true (docker node update --label-add faas.state=true NODE)"
grep -q '"faas.runtime.docker":"true"\|"faas.runtime.gvisor":"true"' <<<"$labels" ||
  die "no node is labelled faas.runtime.docker=true or faas.runtime.gvisor=true"

if [ -z "${PUBLISH_MODE:-}" ]; then
  if [ -e /proc/net/ip_vs ]; then PUBLISH_MODE=ingress ENDPOINT_MODE=${ENDPOINT_MODE:-vip}; else
    log "no IPVS in this kernel: host-mode ports and DNS round robin (PUBLISH_MODE=host ENDPOINT_MODE=dnsrr)"
    PUBLISH_MODE=host ENDPOINT_MODE=${ENDPOINT_MODE:-dnsrr}
  fi
fi
export PUBLISH_MODE ENDPOINT_MODE=${ENDPOINT_MODE:-vip}
if [ -z "${OVERLAY_ENCRYPTION:-}" ]; then
  OVERLAY_ENCRYPTION=on
  if [ -r /proc/config.gz ] && zcat /proc/config.gz | grep -c '^# CONFIG_INET_ESP is not set' >/dev/null; then
    log "this kernel has no ESP (CONFIG_INET_ESP): overlay networks unencrypted (OVERLAY_ENCRYPTION=off)"
    OVERLAY_ENCRYPTION=off
  fi
fi

# Third-party images: upstream's, or the local stand-ins where nothing can be pulled.
if [ -z "${POSTGRES_IMAGE:-}" ] && ! docker image inspect debian:bookworm-slim >/dev/null 2>&1 &&
  ! timeout 20 docker pull -q debian:bookworm-slim >/dev/null 2>&1; then
  log "no upstream registry: local stand-ins from Debian packages, without Grafana"
  bash scripts/local-images.sh
  set -a; . docker/local/compose.env; set +a
  stand_ins=("$POSTGRES_IMAGE" "$RABBITMQ_IMAGE" "$PROMETHEUS_IMAGE")
  export POSTGRES_IMAGE=$REGISTRY/$POSTGRES_IMAGE RABBITMQ_IMAGE=$REGISTRY/$RABBITMQ_IMAGE \
    PROMETHEUS_IMAGE=$REGISTRY/$PROMETHEUS_IMAGE GRAFANA_REPLICAS=${GRAFANA_REPLICAS:-0}
else
  stand_ins=()
fi

started=$SECONDS
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  log "building faas-api and faas-worker (first build: several minutes)"
  for target in api worker; do
    DOCKER_BUILDKIT=0 docker build -q --target "$target" -t "faas-$target:$TAG" \
      --build-arg RUST_IMAGE="${RUST_IMAGE:-rust:1.95-slim-bookworm}" \
      --build-arg RUNTIME_IMAGE="${RUNTIME_IMAGE:-debian:bookworm-slim}" . >/dev/null ||
      die "docker build --target $target failed"
  done
  for image in python-base nodejs-base python-build nodejs-build; do
    docker image inspect "$image" >/dev/null 2>&1 || die "the runtime image $image is missing (scripts/setup.sh builds it)"
  done
  log "built in $((SECONDS - started)) s"
fi

log "pushing to $REGISTRY"
push() { # LOCAL REMOTE
  docker tag "$1" "$2"
  docker push -q "$2" >/dev/null || die "cannot push $2 (is $REGISTRY up, and reachable without TLS?)"
}
push "faas-api:$TAG" "$REGISTRY/faas-api:$TAG"
push "faas-worker:$TAG" "$REGISTRY/faas-worker:$TAG"
for image in python-base nodejs-base python-build nodejs-build; do
  push "$image" "$REGISTRY/$image:$TAG"
done
for image in "${stand_ins[@]}"; do push "$image" "$REGISTRY/$image"; done

# Secrets: the values live in SECRETS_FILE (make-env.sh's random ones), the swarm gets each once.
if [ ! -e "$SECRETS_FILE" ]; then
  bash scripts/make-env.sh "$SECRETS_FILE"
fi
secret_value() { sed -n "s/^$1=//p" "$SECRETS_FILE"; }
declare -A secrets=(
  [faas_postgres_password]=$(secret_value POSTGRES_PASSWORD)
  [faas_postgres_api_password]=$(secret_value POSTGRES_API_PASSWORD)
  [faas_rabbitmq_api_password]=$(secret_value RABBITMQ_API_PASSWORD)
  [faas_rabbitmq_worker_password]=$(secret_value RABBITMQ_WORKER_PASSWORD)
  [faas_grafana_admin_password]=$(secret_value GRAFANA_ADMIN_PASSWORD)
  [faas_admin_key]=$(secret_value ADMIN_KEY)
  [faas_worker_token]=$(secret_value WORKER_TOKEN)
)
secrets[faas_database_url]="postgres://faas_api:${secrets[faas_postgres_api_password]}@postgres:5432/faas"
secrets[faas_api_amqp_url]="amqp://faas-api:${secrets[faas_rabbitmq_api_password]}@rabbitmq:5672/%2f"
secrets[faas_worker_amqp_url]="amqp://faas-worker:${secrets[faas_rabbitmq_worker_password]}@rabbitmq:5672/%2f"
made=0
for name in "${!secrets[@]}"; do
  [ -n "${secrets[$name]}" ] || die "$SECRETS_FILE has no value for $name"
  docker secret inspect "$name" >/dev/null 2>&1 && continue
  printf '%s' "${secrets[$name]}" | docker secret create "$name" - >/dev/null
  made=$((made + 1))
done
log "secrets: $made made, $((${#secrets[@]} - made)) already in the swarm (values in $SECRETS_FILE)"

# A config cannot change in place: its name carries the files' digest.
CONFIG_VERSION=$(cat docker/postgres/10-faas-api.sh docker/rabbitmq/* docker/prometheus/prometheus.yml \
  docker/grafana/provisioning/*/* docker/grafana/dashboards/* | sha256sum | cut -c1-12)
export CONFIG_VERSION

stack_file=deploy/swarm/stack.yml
if [ "$OVERLAY_ENCRYPTION" = off ]; then
  stack_file=$(mktemp deploy/swarm/.stack-XXXXXX.yml)
  trap 'rm -f "$stack_file"' EXIT
  grep -v 'driver_opts: {encrypted: ""}' deploy/swarm/stack.yml >"$stack_file"
fi
log "deploying $STACK ($PUBLISH_MODE ports, $ENDPOINT_MODE, encryption $OVERLAY_ENCRYPTION)"
docker stack deploy --with-registry-auth --prune -c "$stack_file" "$STACK" >/dev/null

# Until every service runs as many tasks as it wants (global ones: one per eligible node).
deadline=$((SECONDS + ${SWARM_UP_TIMEOUT_SECS:-300}))
while :; do
  pending=$(docker service ls --filter "label=com.docker.stack.namespace=$STACK" --format '{{.Name}} {{.Replicas}}' |
    awk '{ split($2, r, "/"); if (r[1] != r[2] || r[2] == 0 && $1 !~ /grafana/) print $1 " " $2 }')
  [ -z "$pending" ] && break
  if ((SECONDS > deadline)); then
    docker stack ps --no-trunc --filter desired-state=running "$STACK" >&2 || true
    die "not running after ${SWARM_UP_TIMEOUT_SECS:-300} s: $(tr '\n' ' ' <<<"$pending")"
  fi
  sleep 2
done
log "stack $STACK up in $((SECONDS - started)) s: $(docker service ls --filter "label=com.docker.stack.namespace=$STACK" --format '{{.Name}}={{.Replicas}}' | tr '\n' ' ')"
