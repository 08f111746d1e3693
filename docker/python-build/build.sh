#!/bin/sh
# Entrypoint of the python-build image (see docker/README.md, "Build images"): installs
# /opt/faas/input/requirements.txt with pip into /tmp/out and writes /tmp/out, as one
# uncompressed tar stream with the installed tree at its root, to stdout. Everything else (pip's
# log and this script's messages) goes to stderr. Exit 0: the tar on stdout is complete; 2: the
# input is missing or unreadable; 1: pip or tar failed, last line "build failed: ...".
set -eu
# fd 3 is the artifact stream; the script's stdout, and with it every command's, is stderr.
exec 3>&1 1>&2

in=/opt/faas/input
out=/tmp/out
fail() { status=$1; shift; printf 'build failed: %s\n' "$*"; exit "$status"; }

python3 -c 'import pip, platform; print(f"pip {pip.__version__} / Python {platform.python_version()}")' 3>&- ||
  fail 1 "python3 or pip is not usable"
[ -f "$in/requirements.txt" ] || fail 2 "$in/requirements.txt is missing"
[ -r "$in/requirements.txt" ] || fail 2 "$in/requirements.txt is not readable by uid $(id -u)"
# An empty value would be taken as an index URL of "".
[ -n "${PIP_INDEX_URL:-}" ] || unset PIP_INDEX_URL
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
[ "$status" -eq 0 ] || fail 1 "pip exited $status"
echo "artifact: $(du -sk "$out" | cut -f1) KiB in $(find "$out" -type f | wc -l) files"
tar -C "$out" -cf - . >&3 || fail 1 "tar exited $?"
