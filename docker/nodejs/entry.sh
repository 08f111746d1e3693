#!/bin/sh
# Entrypoint of the nodejs-base image. Node cannot dup2(), so the shell moves the protocol
# streams out of the way before node (and any user code) starts:
#   fd 3 = original stdout (frames out)   fd 4 = original stdin (frames in)
#   fd 5 = original stderr (bootstrap diagnostics)
#   fd 0 = /dev/null, fds 1 and 2 = log capture file (appended to; the bootstrap reads,
#   truncates and unlinks it; $$ stays node's pid across exec).
command -v node >/dev/null 2>&1 || { echo "faas bootstrap: node not found on PATH" >&2; exit 127; }
exec 3>&1 4<&0 5>&2 0</dev/null 1>>"/tmp/.faas-log-$$" 2>&1
exec node /opt/faas/bootstrap.js
