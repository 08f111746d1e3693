#!/bin/sh
# Entrypoint of the nodejs-build image (see docker/README.md, "Build images"): installs the
# dependencies of /opt/faas/input/package.json with npm in /tmp/out and writes node_modules, as
# one uncompressed tar stream with node_modules/ at its root, to stdout. Everything else (npm's
# log and this script's messages) goes to stderr. Exit 0: the tar on stdout is complete; 2: the
# input is missing or unreadable; 1: npm or tar failed, or the build network's firewall is
# missing, last line "build failed: ...".
set -eu
# fd 3 is the artifact stream; the script's stdout, and with it every command's, is stderr.
exec 3>&1 1>&2

in=/opt/faas/input
out=/tmp/out
cache=/tmp/npm-cache
fail() { status=$1; shift; printf 'build failed: %s\n' "$*"; exit "$status"; }
# The registry (its URL may carry credentials) comes as a file of the build user's, deleted as
# soon as npm is done with it; never in the environment.
index_conf=$in/index/npmrc

# On the build network this host must be out of reach (scripts/build-network.sh): a connection
# to it that is refused or made means the firewall is missing, and nothing is installed. Its
# rule drops or rejects as unreachable, so the attempt times out (gVisor) or fails at once.
if [ -n "${FAAS_BUILD_GATEWAY:-}" ]; then
  node -e '
    const s = require("net").connect({ host: process.argv[1], port: 9 });
    s.setTimeout(1000, () => process.exit(0));
    s.on("connect", () => process.exit(1));
    s.on("error", (e) => process.exit(e.code === "ECONNREFUSED" || e.code === "ECONNRESET" ? 1 : 0));
  ' "$FAAS_BUILD_GATEWAY" 3>&- || { rm -f "$index_conf"; fail 1 "the build network lets builds reach this host ($FAAS_BUILD_GATEWAY): its firewall is missing (scripts/setup.sh makes it)"; }
fi

node_version=$(node --version 3>&-) || fail 1 "node is not usable"
npm_version=$(npm --version --cache "$cache" --no-update-notifier 3>&-) || fail 1 "npm is not usable"
echo "npm $npm_version / Node $node_version"
[ -f "$in/package.json" ] || fail 2 "$in/package.json is missing"
[ -r "$in/package.json" ] || fail 2 "$in/package.json is not readable by uid $(id -u)"

# --logs-max=0: no debug log file in the cache, which nobody could read once the container is gone.
set -- --omit=dev --no-audit --no-fund --no-update-notifier --cache "$cache" --logs-max=0
# Lifecycle scripts (install, postinstall, ...) run only when the worker allows them.
if [ "${FAAS_NPM_SCRIPTS:-}" = 1 ]; then
  echo "lifecycle scripts are enabled (FAAS_NPM_SCRIPTS=1)"
else
  set -- "$@" --ignore-scripts
fi
if [ -e "$in/ca.pem" ]; then
  [ -r "$in/ca.pem" ] || fail 2 "$in/ca.pem is not readable by uid $(id -u)"
  # --cafile for npm's own requests; NODE_EXTRA_CA_CERTS for node run by lifecycle scripts.
  set -- "$@" --cafile "$in/ca.pem"
  export NODE_EXTRA_CA_CERTS="$in/ca.pem"
  echo "trusting the CA bundle $in/ca.pem"
fi

if [ -e "$index_conf" ]; then
  export NPM_CONFIG_USERCONFIG="$index_conf"
fi

mkdir -p "$out"
cp "$in/package.json" "$out/package.json"
cd "$out"
status=0
npm install "$@" 3>&- || status=$?
if [ -e "$index_conf" ]; then
  rm -f "$index_conf" && echo "the registry configuration is deleted" || fail 1 "cannot delete $index_conf"
fi
[ "$status" -eq 0 ] || fail 1 "npm exited $status"
# No dependencies: npm makes no node_modules, and the artifact is an empty one.
mkdir -p node_modules
echo "artifact: $(du -sk node_modules | cut -f1) KiB in $(find node_modules -type f | wc -l) files"
tar -C "$out" -cf - node_modules >&3 || fail 1 "tar exited $?"
