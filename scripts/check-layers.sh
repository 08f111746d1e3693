#!/usr/bin/env bash
# The code's shape, checked in CI (.ci/run): no module of the api or the worker imports a layer
# above its own, no modules import each other in a circle, and no source file is over 600
# lines before its unit tests. The layers, bottom to top, are listed in scripts/check-layers.py
# (docs/architecture.md, "Layers", says what each holds and where a new module goes).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/check-layers.py "$PWD"
