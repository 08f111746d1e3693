#!/usr/bin/env bash
# Brings a machine to the state the platform and its tests need, and is safe to run again:
#   - Docker (Debian's docker.io) and gVisor's runsc, with runsc registered as a Docker runtime
#     for functions (no network) and runsc-build for dependency builds (gVisor's own network
#     stack);
#   - docker-compose and promtool, to check the cluster's configs;
#   - dockerd running (started here when no daemon answers);
#   - the runtime images python-base and nodejs-base, built on a base made locally from Debian
#     packages (mmdebstrap + docker import) when the upstream base images cannot be pulled;
#   - the build images python-build and nodejs-build (the runtime images plus pip / npm), which
#     turn a function's dependencies into an artifact (docker/README.md, "Build images");
#   - the build network faas-build and its firewall: builds reach the package registries only
#     (scripts/build-network.sh, which reads BUILD_PIP_INDEX_URL and BUILD_NPM_REGISTRY).
# Postgres and RabbitMQ are not touched here: scripts/test.sh checks them.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

PYTHON_IMAGE=${PYTHON_IMAGE:-python-base}
NODE_IMAGE=${NODE_IMAGE:-nodejs-base}
PYTHON_BUILD_IMAGE=${PYTHON_BUILD_IMAGE:-python-build}
NODE_BUILD_IMAGE=${NODE_BUILD_IMAGE:-nodejs-build}
LOCAL_BASE=${LOCAL_BASE:-faas-local-base:bookworm}

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v runsc >/dev/null 2>&1 || need_pkgs+=(runsc)
# Checks of the cluster's configs (scripts/check-cluster-config.sh): Compose v1 where the docker
# CLI has no v2 plugin, and promtool, which Debian ships in the prometheus package.
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 || need_pkgs+=(docker-compose)
command -v promtool >/dev/null 2>&1 || need_pkgs+=(prometheus)
/usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 || need_pkgs+=(python3-yaml)
# The web console's browser tests drive Debian's headless Chromium through its ChromeDriver.
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium fonts-liberation)
command -v chromedriver >/dev/null 2>&1 || need_pkgs+=(chromium-driver)
if ((${#need_pkgs[@]})); then
  log "installing ${need_pkgs[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# runsc needs --network=none on these machines: its own netstack cannot be set up in this sandbox,
# and function containers have no network anyway.
#
# runsc is registered through a wrapper that pins TMPDIR=/tmp. runsc builds its sandbox's chroot
# in $TMPDIR, and it inherits containerd's environment: once dockerd has (re)started containerd
# (it does when containerd stops answering, e.g. after hundreds of containers are removed at
# once), that environment has TMPDIR=/var/lib/docker/tmp, under a directory of mode 0710 that
# the sandbox cannot enter, and every gVisor start then fails with "cannot read client sync
# file: waiting for sandbox to start: EOF".
runsc_wrapper=/usr/local/bin/runsc-faas
want_wrapper='#!/bin/sh
# scripts/setup.sh: runsc with its temporary files in /tmp, whatever containerd'"'"'s TMPDIR.
TMPDIR=/tmp exec /usr/bin/runsc "$@"'
if [ "$(cat "$runsc_wrapper" 2>/dev/null)" != "$want_wrapper" ]; then
  printf '%s\n' "$want_wrapper" >"$runsc_wrapper"
  chmod 755 "$runsc_wrapper"
fi
# Builds run under gVisor too, with its own network stack (netstack) on the build network. This
# runsc (Debian's, 2022) refuses to set up that network on kernels from 6.11 on: it takes the
# container's network namespace for the host's when /proc/sys/net/core/rmem_default exists in
# it, which those kernels show in every namespace (gVisor issue 10704). runsc-build runs it in a
# mount namespace of its own where /proc/sys/net is an empty tmpfs, so that check finds nothing;
# the sandbox itself has its own /proc and never sees the host's.
build_wrapper=/usr/local/bin/runsc-build
want_build_wrapper='#!/bin/sh
# scripts/setup.sh: runsc for builds: its temporary files in /tmp, and /proc/sys/net hidden from
# runsc itself (gVisor issue 10704: its root-namespace check misreads kernels >= 6.11).
export TMPDIR=/tmp
exec unshare --mount --propagation private /bin/sh -c '"'"'mount -t tmpfs -o size=4k,mode=0555 faas-runsc-build /proc/sys/net && exec /usr/bin/runsc "$@"'"'"' runsc "$@"'
if [ "$(cat "$build_wrapper" 2>/dev/null)" != "$want_build_wrapper" ]; then
  printf '%s\n' "$want_build_wrapper" >"$build_wrapper"
  chmod 755 "$build_wrapper"
fi
daemon_json=/etc/docker/daemon.json
mkdir -p /etc/docker
daemon_changed=0
# Keep whatever else the file says; set the runsc and runsc-build runtimes (exit 10: the file
# changed).
rc=0
python3 - "$daemon_json" "$runsc_wrapper" "$build_wrapper" <<'PY' || rc=$?
import json, os, sys
path, wrapper, build_wrapper = sys.argv[1:4]
want = {
    "runsc": {"path": wrapper, "runtimeArgs": ["--network=none"]},
    "runsc-build": {"path": build_wrapper},
}
cfg = {}
if os.path.exists(path) and os.path.getsize(path) > 0:
    with open(path) as f:
        cfg = json.load(f)
runtimes = cfg.setdefault("runtimes", {})
if all(runtimes.get(name) == runtime for name, runtime in want.items()):
    sys.exit(0)
runtimes.update(want)
with open(path, "w") as f:
    json.dump(cfg, f, indent=2)
    f.write("\n")
sys.exit(10)
PY
case $rc in
  0) ;;
  10) daemon_changed=1; log "registered runsc ($runsc_wrapper) and runsc-build ($build_wrapper) in $daemon_json" ;;
  *) log "cannot read or write $daemon_json (is it valid JSON?)"; exit 1 ;;
esac

if docker info >/dev/null 2>&1; then
  if ((daemon_changed)); then
    # runtimes are reloadable: SIGHUP makes a running dockerd read daemon.json again.
    pkill -HUP -x dockerd || true
    sleep 1
  fi
else
  log "starting dockerd (log: /var/log/dockerd.log)"
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { log "dockerd did not come up; see /var/log/dockerd.log"; tail -20 /var/log/dockerd.log >&2; exit 1; }
fi
for runtime in runsc runsc-build; do
  docker info --format '{{json .Runtimes}}' | grep -q "\"$runtime\"" || { log "dockerd does not list the $runtime runtime"; exit 1; }
done

# Base images: the upstream ones when they are here or can be pulled, else one made from Debian packages.
py_base=python:3.12-slim
node_base=node:22-slim
have_image() { docker image inspect "$1" >/dev/null 2>&1; }
if ! have_image "$py_base" && ! timeout 20 docker pull -q "$py_base" >/dev/null 2>&1; then py_base=$LOCAL_BASE; fi
if ! have_image "$node_base" && ! timeout 20 docker pull -q "$node_base" >/dev/null 2>&1; then node_base=$LOCAL_BASE; fi
if { [ "$py_base" = "$LOCAL_BASE" ] || [ "$node_base" = "$LOCAL_BASE" ]; } && ! have_image "$LOCAL_BASE"; then
  command -v mmdebstrap >/dev/null 2>&1 || {
    log "installing mmdebstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
  }
  log "building $LOCAL_BASE from Debian packages (python3, nodejs)"
  mmdebstrap --quiet --variant=minbase --include=python3,nodejs,ca-certificates \
    --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
    bookworm - | docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$LOCAL_BASE" >/dev/null
fi

log "building $PYTHON_IMAGE on $py_base"
docker build -q --build-arg BASE_IMAGE="$py_base" -t "$PYTHON_IMAGE" docker/python >/dev/null
log "building $NODE_IMAGE on $node_base"
docker build -q --build-arg BASE_IMAGE="$node_base" -t "$NODE_IMAGE" docker/nodejs >/dev/null
# On the runtime images, so that what is built runs on the same Python / Node. Cached after the
# first run; a rebuilt runtime image installs pip / npm again.
log "building $PYTHON_BUILD_IMAGE on $PYTHON_IMAGE"
docker build -q --build-arg BASE_IMAGE="$PYTHON_IMAGE" -t "$PYTHON_BUILD_IMAGE" docker/python-build >/dev/null
log "building $NODE_BUILD_IMAGE on $NODE_IMAGE"
docker build -q --build-arg BASE_IMAGE="$NODE_IMAGE" -t "$NODE_BUILD_IMAGE" docker/nodejs-build >/dev/null
bash scripts/build-network.sh
log "ready: docker $(docker version --format '{{.Server.Version}}'), runtimes $(docker info --format '{{range $k, $v := .Runtimes}}{{$k}} {{end}}')"
