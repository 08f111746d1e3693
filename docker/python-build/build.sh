#!/bin/sh
# Entrypoint of the python-build image (see docker/README.md, "Build images"): installs
# /opt/faas/input/requirements.txt with pip into /tmp/out and writes /tmp/out, as one
# uncompressed tar stream with the installed tree at its root, to stdout. Everything else (pip's
# log and this script's messages) goes to stderr. Exit 0: the tar on stdout is complete; 2: the
# input is missing or unreadable; 1: pip or tar failed, or the build network's firewall is
# missing, last line "build failed: ...".
set -eu
# fd 3 is the artifact stream; the script's stdout, and with it every command's, is stderr.
exec 3>&1 1>&2

in=/opt/faas/input
out=/tmp/out
fail() { status=$1; shift; printf 'build failed: %s\n' "$*"; exit "$status"; }
# The index (its URL may carry credentials) comes as a file of the build user's, deleted as soon
# as pip is done with it; never in the environment.
index_conf=$in/index/pip.conf

# On the build network this host must be out of reach (scripts/build-network.sh): a connection
# to it that is refused or made means the firewall is missing, and nothing is installed. Its
# rule drops or rejects as unreachable, so the attempt times out (gVisor) or fails at once.
if [ -n "${FAAS_BUILD_GATEWAY:-}" ]; then
  python3 - "$FAAS_BUILD_GATEWAY" 3>&- <<'PY' || { rm -f "$index_conf"; fail 1 "the build network lets builds reach this host ($FAAS_BUILD_GATEWAY): its firewall is missing (scripts/setup.sh makes it)"; }
import socket, sys
try:
    socket.create_connection((sys.argv[1], 9), timeout=1).close()
except (ConnectionRefusedError, ConnectionResetError):
    sys.exit(1)
except OSError:
    sys.exit(0)
sys.exit(1)
PY
fi

python3 -c 'import pip, platform; print(f"pip {pip.__version__} / Python {platform.python_version()}")' 3>&- ||
  fail 1 "python3 or pip is not usable"
[ -f "$in/requirements.txt" ] || fail 2 "$in/requirements.txt is missing"
[ -r "$in/requirements.txt" ] || fail 2 "$in/requirements.txt is not readable by uid $(id -u)"
if [ -e "$index_conf" ]; then
  export PIP_CONFIG_FILE="$index_conf"
fi
if [ -e "$in/ca.pem" ]; then
  [ -r "$in/ca.pem" ] || fail 2 "$in/ca.pem is not readable by uid $(id -u)"
  export PIP_CERT="$in/ca.pem"
  echo "trusting the CA bundle $in/ca.pem"
fi
# Debian's python3 is marked externally managed (PEP 668); --target does not touch it, and this
# keeps a pip that checks anyway from refusing.
export PIP_BREAK_SYSTEM_PACKAGES=1

mkdir -p "$out"
status=0
python3 -m pip install --no-input --no-cache-dir --disable-pip-version-check \
  --progress-bar off --target "$out" -r "$in/requirements.txt" 3>&- || status=$?
if [ -e "$index_conf" ]; then
  rm -f "$index_conf" && echo "the index configuration is deleted" || fail 1 "cannot delete $index_conf"
fi
[ "$status" -eq 0 ] || fail 1 "pip exited $status"
echo "artifact: $(du -sk "$out" | cut -f1) KiB in $(find "$out" -type f | wc -l) files"
tar -C "$out" -cf - . >&3 || fail 1 "tar exited $?"
