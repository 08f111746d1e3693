#!/usr/bin/env bash
# Line coverage of the api and worker crates by their UNIT tests alone: `cargo llvm-cov --lib`,
# i.e. each crate's library test binary (the #[test]s inside src/). The integration tests under
# <crate>/tests, which need Docker, Postgres and RabbitMQ, are not built or run, and neither are
# doctests. Nothing needs a service; it writes only to its target dir.
#
# Usage (from the root of the workspace to measure, or any directory inside it):
#   bash scripts/unit-coverage.sh [GLOB...]
#   COVERAGE_GLOBS='api/src/routes/** worker/src/pool.rs' bash /path/to/unit-coverage.sh
# The workspace measured is the one around the CURRENT directory, not the script's, so one copy
# of this script can measure another checkout (e.g. an old git worktree).
#
# Environment:
#   CARGO_TARGET_DIR   build dir (default /var/cache/faas-coverage-target); use one per checkout
#   COVERAGE_CRATES    crates to run (default "api worker")
#   COVERAGE_GLOBS     core-logic files: whitespace-separated globs relative to the workspace root
#                      (arguments win over it); `**` spans directories, `*` and `?` do not.
#                      Globs joined by commas make one group with one subtotal, e.g. a service
#                      and its handler: api/src/services/invocations.rs,api/src/http/routes/invoke.rs
#   COVERAGE_IGNORE    filename regex left out of every count (default: files named test.rs or
#                      tests.rs, and anything under a tests/ directory)
#   COVERAGE_OUT       where the lcov files go (default $CARGO_TARGET_DIR/unit-coverage)
#
# How to read the output. Every number is "covered lines / lines  percent" for lines of the
# crate's own src/ (the `common` code that a crate's tests also run is left out of its total),
# measured with the crate's own unit tests only. A file that is never reached shows 0%. Three
# ways of counting are printed side by side:
#   llvm       llvm-cov's own summary: what `cargo llvm-cov`, its HTML report and the "lines"
#              summary of `cargo llvm-cov report --json --summary-only` print (the lcov export's
#              LF/LH, read here, are the same numbers). It sums the lines of each function
#              separately, so a line shared by two functions (a closure or async block and its
#              parent, say) counts twice.
#   per-line   each source line once (the DA records of the lcov export: a line counts as covered
#              when its execution count is > 0). Usually a few lines fewer than llvm's.
#   non-test   per-line, less the test code that lives in the source files: llvm instruments
#              and counts #[cfg(test)] modules and #[test] functions like any other code, and as
#              the tests run they are ~100% covered, which inflates the first two columns.
#              Left out here: every item under #[cfg(test)] / #[cfg(all(test, ..))], #[test] or
#              #[tokio::test], and whole files of test-only modules (`#[cfg(test)] mod fake;`).
#              This is the number that says how much of the real logic the unit tests reach.
# Files matched by COVERAGE_IGNORE are in none of the columns. The core-logic table lists the
# files of each glob (or comma-joined group of globs) with a subtotal when there are several, then
# a total over all matched files (each counted once). A test-only module file shows "-" for
# non-test; "(no file ... matches)" means a glob found nothing in the measured crates.
#
# Default globs suit the current layout (api/src/services/** also holds the async dispatch). For
# the layout before the services/domain refactor, e.g.:
#   api/src/routes/invoke.rs api/src/routes/functions.rs 'api/src/dispatch/**'
#   worker/src/executor.rs worker/src/pool.rs
set -euo pipefail

log() { printf '[unit-coverage] %s\n' "$*" >&2; }

CARGO_LLVM_COV_VERSION=${CARGO_LLVM_COV_VERSION:-0.9.1}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/faas-coverage-target}
COVERAGE_CRATES=${COVERAGE_CRATES:-api worker}
COVERAGE_IGNORE=${COVERAGE_IGNORE:-'(^|/)tests?\.rs$|/tests/'}
COVERAGE_OUT=${COVERAGE_OUT:-$CARGO_TARGET_DIR/unit-coverage}
DEFAULT_GLOBS='api/src/services/** api/src/domain/** api/src/http/routes/invoke.rs
  api/src/http/routes/functions.rs worker/src/executor.rs worker/src/pool/**'
if [ "$#" -gt 0 ]; then
  GLOBS="$*"
else
  GLOBS=${COVERAGE_GLOBS:-$DEFAULT_GLOBS}
fi

# The workspace around the current directory.
manifest=$(cargo locate-project --workspace --message-format plain)
root=$(dirname "$manifest")
cd "$root"

if ! cargo llvm-cov --version >/dev/null 2>&1; then
  log "installing cargo-llvm-cov $CARGO_LLVM_COV_VERSION"
  cargo install --locked cargo-llvm-cov --version "$CARGO_LLVM_COV_VERSION"
fi
sysroot=$(rustc --print sysroot)
host=$(rustc -vV | sed -n 's/^host: //p')
if [ ! -x "$sysroot/lib/rustlib/$host/bin/llvm-profdata" ]; then
  log "llvm-tools missing; adding the rustup component"
  rustup component add llvm-tools || rustup component add llvm-tools-preview
fi

mkdir -p "$COVERAGE_OUT"
for crate in $COVERAGE_CRATES; do
  log "$crate: cargo llvm-cov --lib -p $crate --locked (unit tests only)"
  # One run per crate: a crate's number is what its own unit tests reach.
  # The tests' own output goes to stderr: stdout is the report alone.
  cargo llvm-cov --lib -p "$crate" --locked \
    --ignore-filename-regex "$COVERAGE_IGNORE" \
    --lcov --output-path "$COVERAGE_OUT/$crate.lcov" >&2
done

commit=$(git rev-parse --short HEAD 2>/dev/null || echo '?')
dirty=
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null || true)" ]; then
  dirty=', uncommitted changes'
fi
metadata=$(cargo metadata --no-deps --format-version 1 --locked)

ROOT="$root" OUT="$COVERAGE_OUT" CRATES="$COVERAGE_CRATES" GLOBS="$GLOBS" IGNORE="$COVERAGE_IGNORE" \
  COMMIT="$commit$dirty" METADATA="$metadata" python3 - <<'PY'
import json, os, re

root = os.environ["ROOT"]
crates = os.environ["CRATES"].split()
globs = os.environ["GLOBS"].split()
ignore = re.compile(os.environ["IGNORE"])
meta = json.loads(os.environ["METADATA"])
crate_dir = {p["name"]: os.path.relpath(os.path.dirname(p["manifest_path"]), root) for p in meta["packages"]}

# --- test code inside source files -----------------------------------------------------------
TEST_ATTR = re.compile(r"^\s*#\[\s*(cfg\s*\(\s*(test\s*\)|all\s*\(\s*test\b)|test\s*\]|tokio::test\b)")
MOD_DECL = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?mod\s+([A-Za-z_][A-Za-z0-9_]*)\s*;")

def item_end(text, pos):
    """Offset of the end of the item starting at pos: its first top-level `;`, or a `}` that
    closes every bracket opened since pos. Skips comments, strings, raw strings and char
    literals."""
    depth, i, n = 0, pos, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            i = text.find("\n", i)
            if i < 0:
                return n
            continue
        if text.startswith("/*", i):
            d, i = 1, i + 2
            while i < n and d:
                if text.startswith("/*", i): d, i = d + 1, i + 2
                elif text.startswith("*/", i): d, i = d - 1, i + 2
                else: i += 1
            continue
        m = re.match(r'b?r(#*)"', text[i:i + 260]) if c in "br" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")) else None
        if m:
            close = '"' + m.group(1)
            j = text.find(close, i + m.end())
            i = n if j < 0 else j + len(close)
            continue
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            continue
        if c == "'":
            if text.startswith("\\", i + 1):
                j = text.find("'", i + 2)
                i = n if j < 0 else j + 1
            elif i + 2 < n and text[i + 2] == "'":
                i += 3
            else:
                i += 1  # a lifetime
            continue
        if c in "{[(":
            depth += 1
        elif c in "}])":
            depth -= 1
            if depth == 0 and c == "}":
                return i
        elif c == ";" and depth == 0:
            return i
        i += 1
    return n

def test_code(path):
    """Lines (1-based) of test-only items in the file, and the test-only module files it declares."""
    try:
        with open(os.path.join(root, path), encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return set(), []
    starts = [0]
    for m in re.finditer("\n", text):
        starts.append(m.end())
    def line_of(off):
        lo, hi = 0, len(starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if starts[mid] <= off: lo = mid
            else: hi = mid - 1
        return lo + 1
    lines, mods, skip_to = set(), [], -1
    for idx, start in enumerate(starts):
        if start <= skip_to:
            continue
        end_of_line = text.find("\n", start)
        line = text[start:end_of_line if end_of_line >= 0 else len(text)]
        if not TEST_ATTR.match(line):
            continue
        # the item: from the attribute to its end (later attributes contain no `{` or `;`)
        after_attr = start + line.index("]", line.index("#")) + 1
        end = item_end(text, after_attr)
        first, last = idx + 1, line_of(end)
        lines.update(range(first, last + 1))
        skip_to = end
        for l in text[after_attr:end + 1].splitlines():
            m = MOD_DECL.match(l)
            if m:
                mods.append(m.group(3))
                break
    # files of test-only modules declared as `mod name;`
    base = os.path.basename(path)
    d = os.path.dirname(path) if base in ("mod.rs", "lib.rs", "main.rs") else path[:-3]
    return lines, [os.path.join(d, name) for name in mods]

# --- lcov --------------------------------------------------------------------------------------
def read_lcov(path):
    files, cur = {}, None
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("SF:"):
                cur = {"da": {}, "lf": 0, "lh": 0}
                files[os.path.relpath(line[3:], root)] = cur
            elif line.startswith("DA:"):
                num, count = line[3:].split(",")[:2]
                cur["da"][int(num)] = max(cur["da"].get(int(num), 0), int(count))
            elif line.startswith("LF:"):
                cur["lf"] = int(line[3:])
            elif line.startswith("LH:"):
                cur["lh"] = int(line[3:])
    return files

stats = {}  # path -> [llvm lines, llvm covered, lines, covered, non-test lines, non-test covered]
test_mod_prefixes = []
for crate in crates:
    prefix = crate_dir.get(crate, crate).rstrip("/") + "/"
    for path, rec in read_lcov(os.path.join(os.environ["OUT"], crate + ".lcov")).items():
        # a crate's report also holds the workspace code its tests reach (common); each file
        # is taken from the run of the crate it belongs to
        if not path.startswith(prefix) or path.startswith("..") or ignore.search(path):
            continue
        tlines, tmods = test_code(path)
        test_mod_prefixes += tmods
        da = rec["da"]
        nt = {l: c for l, c in da.items() if l not in tlines}
        stats[path] = [rec["lf"], rec["lh"], len(da), sum(c > 0 for c in da.values()),
                       len(nt), sum(c > 0 for c in nt.values()), crate]
for path, s in stats.items():
    stem = path[:-3]
    if any(stem == p or path == p + "/mod.rs" or path.startswith(p + "/") for p in test_mod_prefixes):
        s[4] = s[5] = 0  # a whole test-only module file
        s.append("test-only module")

def pct(c, n):
    return f"{c:>6}/{n:<6}{(100.0 * c / n) if n else 0:6.1f}%" if n else f"{'-':>6} {'':<6}{'-':>7}"

def row(label, vals, note=""):
    a, b, c, d, e, f = vals
    print(f"{label:<50} {pct(b, a)}  {pct(d, c)}  {pct(f, e)}{'  ' + note if note else ''}")

def total(paths):
    t = [0] * 6
    for p in paths:
        for i in range(6):
            t[i] += stats[p][i]
    return t

def glob_re(g):
    out, i = "", 0
    while i < len(g):
        if g.startswith("**/", i): out, i = out + "(?:.*/)?", i + 3
        elif g.startswith("**", i): out, i = out + ".*", i + 2
        elif g[i] == "*": out, i = out + "[^/]*", i + 1
        elif g[i] == "?": out, i = out + "[^/]", i + 1
        else: out, i = out + re.escape(g[i]), i + 1
    return re.compile(out + r"\Z")

header = f"{'':<50} {'llvm':^20}  {'per-line':^20}  {'non-test':^20}"
print()
print(f"== unit-test line coverage of {root} (commit {os.environ['COMMIT']})")
print(f"   cargo llvm-cov --lib -p <crate>; files ignored: /{ignore.pattern}/")
print()
print("crate totals (the crate's own src/, its own unit tests)")
print(header)
for crate in crates:
    prefix = crate_dir.get(crate, crate).rstrip("/") + "/"
    row(f"{crate} ({prefix}src)", total([p for p in stats if p.startswith(prefix)]))
print()
print("core-logic files")
print(header)
matched_all = []
for g in globs:
    rxs = [glob_re(part.strip("/")) for part in g.split(",") if part]
    matched = sorted(p for p in stats if any(rx.match(p) for rx in rxs))
    print(f"{g}")
    if not matched:
        print("  (no file of the measured crates matches)")
        continue
    for p in matched:
        row("  " + p, stats[p][:6], stats[p][7] if len(stats[p]) > 7 else "")
        if p not in matched_all:
            matched_all.append(p)
    if len(matched) > 1:
        row("  = subtotal", total(matched))
print()
row(f"TOTAL core logic ({len(matched_all)} files, each once)", total(matched_all))
print()
PY
