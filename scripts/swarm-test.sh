#!/usr/bin/env bash
# A real two-node Docker Swarm on this one machine, with the platform deployed on it by
# scripts/swarm-up.sh, and what must hold when a node is drained, lost and back:
#   manager  this machine's dockerd (scripts/setup.sh starts it): labelled faas.state=true (Postgres,
#            RabbitMQ, Prometheus) and faas.runtime.docker / faas.runtime.gvisor
#   worker   a second dockerd, "faas-node2", in a network namespace of its own joined to this one
#            by a veth pair, and in mount, UTS and PID namespaces of its own: its own /run (socket,
#            exec root, containerd), data root, hostname and dependency cache; runsc registered;
#            labelled faas.runtime.docker / faas.runtime.gvisor. Killing its PID namespace's init
#            kills every process of the node at once: dockerd, containerd, the workers and their
#            function containers, as a power cut would.
#   registry Debian's docker-registry, which both nodes pull from as 127.0.0.1:5000 (a loopback
#            registry needs no TLS; node2 reaches it through socat over the veth pair)
# The kernel here has no IPVS, so the stack runs with host-mode ports and DNS round robin
# (swarm-up.sh picks them); the client sends each call to one node's api and to the other when
# the first refuses the connection, as a load balancer in front of the nodes would.
# Checks:
#   1. workers of both runtimes run on both nodes, and 200 calls of 10 functions are served by
#      workers of both nodes, on both runtimes (the records' worker ids name the node);
#   2. node2 drained under load: every call answers 200, no container is left on node2, and it
#      comes back `active` with its workers;
#   3. node2 killed with sync and async calls in flight (sent to node1's api): every sync call
#      answered 200 or a 502/503 with a code, every accepted async call reaches a terminal status;
#      node2 restarted rejoins and runs its workers again;
#   4. the api scaled to 1 and back to 2 under load: every call answers 200;
#   5. the stack removed: no service, container, network or function container left on either
#      node (then its volumes are removed).
# Everything it makes (stack, swarm, node2 and its namespace, veth, registry, images it pushed,
# volumes, state under SWARM_STATE) is removed on exit, failed or not. It refuses to run when this
# dockerd is already part of a swarm. Needs root. Takes some minutes (the images are built).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
log() { printf '[swarm-test] %s %s\n' "$(date +%T)" "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

STACK=faastest
NETNS=faas-swarm-n2
NODE2=faas-node2
VETH_HOST=faas-sw0 VETH_NODE=faas-sw1
HOST_IP=192.168.231.1 NODE_IP=192.168.231.2
STATE=${SWARM_STATE:-/var/lib/faas-swarm-test}
REG_PORT=${SWARM_REGISTRY_PORT:-5000}
export REGISTRY=127.0.0.1:$REG_PORT STACK
export API_PORT=${SWARM_API_PORT:-28000} FUNCTIONS_PORT=${SWARM_FUNCTIONS_PORT:-28080}
export PROMETHEUS_PORT=${SWARM_PROMETHEUS_PORT:-29090} GRAFANA_PORT=${SWARM_GRAFANA_PORT:-23000}
export SECRETS_FILE=$STATE/secrets.env
export WORKER_MEMORY_MB=${WORKER_MEMORY_MB:-2048}
# Node1's api at the veth address, not 127.0.0.1: loopback connections to a published port go
# through docker-proxy, which accepts them itself and resets them when the container no longer
# listens, where a load balancer reaching the node's address gets the refusal it fails over on.
node1_api=http://$HOST_IP:$API_PORT
node2_api=http://$NODE_IP:$API_PORT
node2() { DOCKER_HOST=unix://$STATE/node2.sock docker "$@"; }

[ "$(id -u)" = 0 ] || fail "run as root (namespaces, veth, a second dockerd)"
docker info >/dev/null 2>&1 || fail "no Docker daemon answers (scripts/setup.sh starts one)"
[ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = inactive ] ||
  fail "this dockerd is already in a swarm; this test makes and removes its own (docker swarm leave --force)"
ip netns list | grep -qw "$NETNS" && fail "network namespace $NETNS exists (a run still going?)"

need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v socat >/dev/null || need+=(socat)
if ((${#need[@]})); then
  log "installing ${need[*]} from Debian's packages"
  # Not started by the package's scripts: the test runs its own registry, on its own address.
  policy=0
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; policy=1; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  ((policy)) && rm -f /usr/sbin/policy-rc.d
fi

pids=()
node2_pid=
cleanup() {
  local status=$?
  set +e
  trap - ERR
  if ((status != 0)); then
    for service in api worker-docker worker-gvisor; do
      log "last lines of $service:"
      timeout 20 docker service logs --tail 15 "${STACK}_$service" 2>&1 | tail -30 >&2
    done
    log "last lines of node2's dockerd:"
    tail -15 "$STATE/node2.log" >&2
  fi
  docker stack rm "$STACK" >/dev/null 2>&1
  for _ in $(seq 1 60); do
    [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] && break
    sleep 1
  done
  stop_node2
  docker swarm leave --force >/dev/null 2>&1
  docker network rm docker_gwbridge >/dev/null 2>&1
  docker volume ls -q --filter "label=com.docker.stack.namespace=$STACK" | xargs -r docker volume rm >/dev/null 2>&1
  docker images --format '{{.Repository}}:{{.Tag}}' | grep "^$REGISTRY/" | xargs -r docker rmi >/dev/null 2>&1
  ((${#pids[@]})) && kill "${pids[@]}" 2>/dev/null
  ip link del "$VETH_HOST" 2>/dev/null
  ip netns del "$NETNS" 2>/dev/null
  # The cgroups node2's containers had (cgroup-parent), deepest first.
  find /sys/fs/cgroup -depth -type d -path "*/faas-node2*" -exec rmdir {} + 2>/dev/null
  rm -rf "$STATE"
  log "cleaned up"
}
trap cleanup EXIT
trap 'log "FAILED at line $LINENO: $BASH_COMMAND"' ERR

# node2: every process in a PID namespace whose init is a shell that waits; $node2_pid is that
# namespace's unshare, whose child is the init.
start_node2() {
  # nsenter rather than `ip netns exec`, which mounts a sysfs without the cgroup hierarchies
  # that dockerd needs: here /sys is this network namespace's, with this machine's cgroups.
  nsenter --net="/run/netns/$NETNS" unshare --mount --uts --pid --fork --mount-proc --propagation private \
    bash -c "
      set -e
      hostname $NODE2
      mount -t tmpfs -o mode=755 tmpfs /run
      mkdir /run/host-cgroup
      mount --rbind /sys/fs/cgroup /run/host-cgroup
      mount -t sysfs sysfs /sys
      mount --rbind /run/host-cgroup /sys/fs/cgroup
      mkdir -p /var/lib/faas/deps
      mount --bind '$STATE/node2-deps' /var/lib/faas/deps
      dockerd --config-file '$STATE/node2-daemon.json' --data-root '$STATE/node2-docker' \
        --exec-root /run/docker --pidfile /run/docker.pid \
        -H unix:///run/docker.sock -H 'unix://$STATE/node2.sock' &
      socat TCP-LISTEN:$REG_PORT,bind=127.0.0.1,reuseaddr,fork TCP:$HOST_IP:$REG_PORT &
      wait
    " >>"$STATE/node2.log" 2>&1 &
  node2_pid=$!
  for _ in $(seq 1 60); do
    node2 info >/dev/null 2>&1 && return 0
    sleep 1
  done
  fail "node2's dockerd did not come up (its log: above)"
}
# Kills node2 whole: SIGKILL to its PID namespace's init takes every process in it.
stop_node2() {
  [ -n "$node2_pid" ] || return 0
  local init
  init=$(pgrep -P "$node2_pid" | head -1)
  [ -z "$init" ] || kill -9 "$init" 2>/dev/null || true
  wait "$node2_pid" 2>/dev/null || true
  node2_pid=
}

started=$SECONDS
log "making node2: namespace $NETNS, veth $VETH_HOST ($HOST_IP) <-> $VETH_NODE ($NODE_IP)"
mkdir -p "$STATE/node2-deps" "$STATE/node2-docker" "$STATE/registry" /var/lib/faas/deps
ip netns add "$NETNS"
ip link add "$VETH_HOST" type veth peer name "$VETH_NODE"
ip link set "$VETH_NODE" netns "$NETNS"
ip addr add "$HOST_IP/24" dev "$VETH_HOST"
ip link set "$VETH_HOST" up
ip netns exec "$NETNS" ip link set lo up
ip netns exec "$NETNS" ip addr add "$NODE_IP/24" dev "$VETH_NODE"
ip netns exec "$NETNS" ip link set "$VETH_NODE" up
ip netns exec "$NETNS" ip route add default via "$HOST_IP"
# node2's daemon: this machine's runtimes (runsc), its own cgroup parent.
python3 - /etc/docker/daemon.json "$STATE/node2-daemon.json" <<'PY'
import json, sys
host = json.load(open(sys.argv[1]))
json.dump({"runtimes": host.get("runtimes", {}), "cgroup-parent": "/faas-node2"}, open(sys.argv[2], "w"))
PY
start_node2

log "registry on $HOST_IP:$REG_PORT (127.0.0.1:$REG_PORT on both nodes)"
cat >"$STATE/registry.yml" <<EOF
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $STATE/registry}}
http: {addr: "$HOST_IP:$REG_PORT"}
EOF
docker-registry serve "$STATE/registry.yml" >"$STATE/registry.log" 2>&1 &
pids+=($!)
socat "TCP-LISTEN:$REG_PORT,bind=127.0.0.1,reuseaddr,fork" "TCP:$HOST_IP:$REG_PORT" &
pids+=($!)
for _ in $(seq 1 30); do curl -sf "http://$REGISTRY/v2/" >/dev/null && break; sleep 0.5; done
curl -sf "http://$REGISTRY/v2/" >/dev/null || fail "the registry does not answer: $(cat "$STATE/registry.log")"

log "swarm: this dockerd as manager, node2 joined as worker"
docker swarm init --advertise-addr "$HOST_IP" --listen-addr "$HOST_IP:2377" >/dev/null
node2 swarm join --token "$(docker swarm join-token -q worker)" --advertise-addr "$NODE_IP" \
  --listen-addr "$NODE_IP:2377" "$HOST_IP:2377" >/dev/null
node1=$(docker info --format '{{.Swarm.NodeID}}')
docker node update --label-add faas.state=true --label-add faas.runtime.docker=true \
  --label-add faas.runtime.gvisor=true "$node1" >/dev/null
docker node update --label-add faas.runtime.docker=true --label-add faas.runtime.gvisor=true "$NODE2" >/dev/null
node1_name=$(docker node inspect --format '{{.Description.Hostname}}' "$node1")
log "nodes: $(docker node ls --format '{{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}}' | tr '\n' ';')"

deploy_started=$SECONDS
bash scripts/swarm-up.sh
stack_up=$((SECONDS - deploy_started))
KEY=$(sed -n 's/^ADMIN_KEY=//p' "$SECRETS_FILE")
export KEY
load() { APIS=$1 python3 scripts/swarm_load.py "${@:2}"; }
# For a load's summary whose calls were not all answered: their records, and every log line of
# the api and the workers that names them.
explain() { # SUMMARY
  local ids
  load "$node1_api" records "$1" >&2 || true
  ids=$(python3 -c 'import json,sys; print("|".join(c["invocation_id"] for c in json.load(open(sys.argv[1]))["unclean"] if c.get("invocation_id")))' "$1")
  [ -n "$ids" ] || return 0
  for service in api worker-docker worker-gvisor; do
    timeout 20 docker service logs --raw "${STACK}_$service" 2>&1 | grep -E "$ids" | cut -c1-400 >&2 || true
  done
}

# Until both apis answer and both nodes run both workers.
running_on() { # SERVICE NODE
  docker service ps "${STACK}_$1" --filter desired-state=running --filter "node=$2" \
    --format '{{.CurrentState}}' | grep -c '^Running' || true
}
# Home queues of NODE's workers that have a consumer: a worker consumes once its start-up checks
# (and its pulls of the runtime images) are done.
consuming_on() { # NODE
  local rabbitmq
  rabbitmq=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_rabbitmq" | head -1)
  [ -n "$rabbitmq" ] || { echo 0; return; }
  docker exec "$rabbitmq" rabbitmqctl -q list_queues name consumers 2>/dev/null |
    awk -v node="$1" '$1 ~ "^faas\\.home\\.(docker|gvisor)\\." node "/" && $2 > 0' | wc -l
}
wait_node2_workers() {
  for _ in $(seq 1 180); do
    if [ "$(running_on worker-docker "$NODE2")" = 1 ] && [ "$(running_on worker-gvisor "$NODE2")" = 1 ] &&
      [ "$(consuming_on "$NODE2")" = 2 ]; then
      return 0
    fi
    sleep 1
  done
  fail "node2 does not run both workers: $(docker service ps "${STACK}_worker-docker" "${STACK}_worker-gvisor" --format '{{.Node}} {{.CurrentState}} {{.Error}}' | tr '\n' ';')"
}
wait_node2_workers
for service in worker-docker worker-gvisor; do
  [ "$(running_on "$service" "$node1_name")" = 1 ] || fail "$service does not run on $node1_name"
done
[ "$(consuming_on "$node1_name")" = 2 ] || fail "the workers on $node1_name do not consume their home queues"
for api in "$node1_api" "$node2_api"; do
  for _ in $(seq 1 60); do curl -sf "$api/readyz" >/dev/null && break; sleep 1; done
  curl -sf "$api/readyz" >/dev/null || fail "$api/readyz does not answer"
done
log "1. up in $stack_up s (build, push, deploy): workers of both runtimes on $node1_name and $NODE2, an api on each"

both="$node1_api,$node2_api"
load "$both" setup
load "$both" load --calls 200 --concurrency 8 >"$STATE/spread.json"
python3 - "$STATE/spread.json" <<'PY' || fail "200 calls: $(head -c 600 "$STATE/spread.json")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["calls"] == 200 and s["statuses"] == {"200": 200}, s["statuses"]
PY
load "$both" nodes "$STATE/spread.json" >"$STATE/served.json"
python3 - "$STATE/served.json" "$node1_name" "$NODE2" <<'PY' || fail "where the calls ran: $(cat "$STATE/served.json")"
import json, sys
s = json.load(open(sys.argv[1]))
served, nodes = s["served"], sys.argv[2:]
assert s["missing_records"] == 0, s
for node in nodes:
    assert sum(served.get(node, {}).values()) > 0, f"{node} served nothing"
for runtime in ("docker", "gvisor"):
    assert sum(by.get(runtime, 0) for by in served.values()) == 100, f"{runtime}: {served}"
    assert all(served.get(node, {}).get(runtime, 0) > 0 for node in nodes), f"{runtime} not on both nodes: {served}"
PY
log "   200 calls of 10 functions answered 200, served by: $(cat "$STATE/served.json")"

# 2. Drain node2 under load.
load "$both" load --seconds 40 --concurrency 6 --sleep 0.2 >"$STATE/drain.json" &
load_pid=$!
sleep 8
drain_started=$SECONDS
docker node update --availability drain "$NODE2" >/dev/null
for _ in $(seq 1 120); do
  [ -z "$(docker node ps "$NODE2" --filter desired-state=running -q)" ] && [ -z "$(node2 ps -q)" ] &&
    [ -z "$(node2 ps -aq --filter label=faas.managed)" ] && break
  sleep 1
done
drained=$((SECONDS - drain_started))
# Nothing runs there, and no function container is left in any state (Swarm keeps its tasks'
# stopped containers for their history).
[ -z "$(node2 ps -q)" ] || fail "containers still running on the drained node2: $(node2 ps --format '{{.Names}} {{.Image}}' | tr '\n' ';')"
[ -z "$(node2 ps -aq --filter label=faas.managed)" ] || fail "function containers left on the drained node2: $(node2 ps -a --filter label=faas.managed --format '{{.Names}} {{.Status}}' | tr '\n' ';')"
wait "$load_pid"
python3 - "$STATE/drain.json" <<'PY' || { explain "$STATE/drain.json"; fail "calls during the drain: $(head -c 800 "$STATE/drain.json")"; }
import json, sys
s = json.load(open(sys.argv[1]))
assert s["calls"] > 0 and list(s["statuses"]) == ["200"], s["statuses"]
print(f"{s['calls']} calls in {s['seconds']} s, all 200 ({s['failovers']} connections refused by the drained api and sent to the other)", file=sys.stderr)
PY
docker node update --availability active "$NODE2" >/dev/null
[ "$(docker node inspect --format '{{.Spec.Availability}}' "$NODE2")" = active ] || fail "node2 is not active again"
wait_node2_workers
log "2. drained in $drained s with nothing left on $NODE2; active again, its workers back"

# 3. Kill node2 with calls in flight: sync and async, each running 1 s, through node1's api
# (node2's api dies with its node, and with it any call a client had sent there).
load "$node1_api" load --seconds 25 --concurrency 12 --sleep 1 --async-every 3 >"$STATE/loss.json" &
load_pid=$!
sleep 8
log "   killing $NODE2 (every process of it) with calls in flight"
loss_started=$SECONDS
stop_node2
wait "$load_pid"
python3 - "$STATE/loss.json" <<'PY' || { explain "$STATE/loss.json"; fail "calls during the node loss: $(head -c 1200 "$STATE/loss.json")"; }
import json, sys
s = json.load(open(sys.argv[1]))
assert s["calls"] > 0 and not s["unclean"], s["unclean"][:5]
print(f"{s['calls']} calls in {s['seconds']} s: {s['statuses']}", file=sys.stderr)
PY
load "$node1_api" settle "$STATE/loss.json" --timeout 240 >"$STATE/settled.json"
python3 - "$STATE/settled.json" <<'PY' || fail "async calls after the node loss: $(cat "$STATE/settled.json")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["accepted"] > 0 and not s["not_terminal"], s
print(f"{s['accepted']} accepted async calls, all terminal: {s['outcomes']}", file=sys.stderr)
PY
settled=$((SECONDS - loss_started))
for _ in $(seq 1 60); do
  [ "$(docker node inspect --format '{{.Status.State}}' "$NODE2")" = down ] && break
  sleep 1
done
down_after=$((SECONDS - loss_started))
start_node2
for _ in $(seq 1 120); do
  [ "$(docker node inspect --format '{{.Status.State}}' "$NODE2")" = ready ] && break
  sleep 1
done
wait_node2_workers
log "3. $NODE2 lost: no call lost, async settled ${settled} s after, node down by ${down_after} s; restarted, back with its workers $((SECONDS - loss_started)) s after the loss"

# 4. Scale the api under load.
for _ in $(seq 1 60); do curl -sf "$node2_api/readyz" >/dev/null && break; sleep 1; done
load "$both" load --seconds 40 --concurrency 6 --sleep 0.1 >"$STATE/scale.json" &
load_pid=$!
sleep 5
docker service scale --detach=false "${STACK}_api=1" >/dev/null 2>&1
docker service scale --detach=false "${STACK}_api=2" >/dev/null 2>&1
wait "$load_pid"
python3 - "$STATE/scale.json" <<'PY' || { explain "$STATE/scale.json"; fail "calls while the api scaled: $(head -c 800 "$STATE/scale.json")"; }
import json, sys
s = json.load(open(sys.argv[1]))
assert s["calls"] > 0 and list(s["statuses"]) == ["200"], s["statuses"]
print(f"{s['calls']} calls in {s['seconds']} s, all 200 ({s['failovers']} sent to the other api)", file=sys.stderr)
PY
[ "$(docker service ls --filter "name=${STACK}_api" --format '{{.Replicas}}')" = "2/2 (max 1 per node)" ] ||
  fail "the api is not back to 2 replicas: $(docker service ls --filter "name=${STACK}_api" --format '{{.Replicas}}')"
log "4. api scaled 2 -> 1 -> 2 under load, every call answered"

# 5. Remove the stack: nothing of it on either node.
removed_started=$SECONDS
docker stack rm "$STACK" >/dev/null
# What the stack made on a node: its containers (any state), function containers, networks.
leftovers() { # DOCKER-COMMAND
  "$1" ps -a --filter "label=com.docker.stack.namespace=$STACK" --format 'container {{.Names}}'
  "$1" ps -a --filter label=faas.managed --format 'function container {{.Names}}'
  "$1" network ls --filter "label=com.docker.stack.namespace=$STACK" --format 'network {{.Name}}'
}
for _ in $(seq 1 90); do
  [ -z "$(leftovers docker)$(leftovers node2)" ] && break
  sleep 1
done
[ -z "$(docker service ls -q)" ] || fail "services left: $(docker service ls --format '{{.Name}}')"
[ -z "$(leftovers docker)" ] || fail "left on $node1_name: $(leftovers docker | tr '\n' ';')"
[ -z "$(leftovers node2)" ] || fail "left on $NODE2: $(leftovers node2 | tr '\n' ';')"
log "5. stack removed in $((SECONDS - removed_started)) s: no service, container or network left on either node"
log "passed in $((SECONDS - started)) s"
