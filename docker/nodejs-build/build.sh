#!/bin/sh
# Entrypoint of the nodejs-build image (see docker/README.md, "Build images"): installs the
# dependencies of /opt/faas/input/package.json with npm in /tmp/out and writes node_modules, as
# one uncompressed tar stream with node_modules/ at its root, to stdout. Everything else (npm's
# log and this script's messages) goes to stderr. Exit 0: the tar on stdout is complete; 2: the
# input is missing or unreadable; 1: npm or tar failed, last line "build failed: ...".
set -eu
# fd 3 is the artifact stream; the script's stdout, and with it every command's, is stderr.
exec 3>&1 1>&2

in=/opt/faas/input
out=/tmp/out
cache=/tmp/npm-cache
fail() { status=$1; shift; printf 'build failed: %s\n' "$*"; exit "$status"; }

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

mkdir -p "$out"
cp "$in/package.json" "$out/package.json"
cd "$out"
status=0
npm install "$@" 3>&- || status=$?
[ "$status" -eq 0 ] || fail 1 "npm exited $status"
# No dependencies: npm makes no node_modules, and the artifact is an empty one.
mkdir -p node_modules
echo "artifact: $(du -sk node_modules | cut -f1) KiB in $(find node_modules -type f | wc -l) files"
tar -C "$out" -cf - node_modules >&3 || fail 1 "tar exited $?"
