#!/usr/bin/env bash
# Vendors the web console's front-end into api/assets/console/vendor/, whence the api serves it
# (no CDN, same origin, so the console's `Content-Security-Policy: default-src 'self'` holds):
#
#   editor.js     api/assets/console/editor/main.js and CodeMirror 6, bundled by esbuild into one
#                 minified classic script (IIFE)
#   htmx.min.js   htmx.org's dist/htmx.min.js, as published
#   LICENSES.txt  the licence of htmx and of every package bundled into editor.js, with versions
#   VERSIONS      one line per package: name version
#   SHA256SUMS    sha256sum of editor.js and htmx.min.js
#
# Inputs: api/assets/console/editor/{package.json,package-lock.json,main.js}. The lockfile pins
# every package with its integrity hash; `npm ci` installs exactly that in a temporary folder,
# with --ignore-scripts (esbuild's binary comes in its platform package, @esbuild/linux-x64 here,
# an optional dependency that npm installs without running any script). Nothing else is
# fetched, and the output depends only on those three files: the same inputs give the same
# bytes (fixed esbuild version and options, no timestamps, sorted listings).
#
# Run it after changing main.js or the pinned versions (to move a version: change it in
# package.json, run `npm install --package-lock-only --ignore-scripts` in the editor folder,
# then this script), and commit what it wrote.
#
#   scripts/vendor-console-assets.sh           rebuild and write the files
#   scripts/vendor-console-assets.sh --check   rebuild in a temporary folder; exit 1 naming each
#                                              committed file that differs from the rebuild
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[vendor-console-assets] %s\n' "$*" >&2; }

SRC=api/assets/console/editor
DEST=api/assets/console/vendor
FILES=(editor.js htmx.min.js LICENSES.txt VERSIONS SHA256SUMS)

check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  *) log "usage: $0 [--check]"; exit 2 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
build="$work/build"
out="$work/out"
mkdir -p "$build" "$out"
cp "$SRC/package.json" "$SRC/package-lock.json" "$SRC/main.js" "$build/"

log "installing the locked packages (npm ci --ignore-scripts)"
(cd "$build" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)

# One copy each: CodeMirror breaks with two of @codemirror/state (or view, language), and
# main.js patches the StyleModule that @codemirror/view mounts its styles with.
for pkg in @codemirror/state @codemirror/view @codemirror/language style-mod; do
  copies=$(cd "$build" && find node_modules -path "*node_modules/$pkg/package.json" | wc -l)
  if [ "$copies" != 1 ]; then
    log "$copies copies of $pkg installed, want exactly 1: align the pins in $SRC/package.json"
    exit 1
  fi
done

log "bundling main.js with esbuild $(cd "$build" && node_modules/.bin/esbuild --version)"
# Fixed options: one IIFE, minified, for browsers of 2020 on, ASCII output, the source's legal
# comments (if any) at the end, no source map; the metafile lists the bundled packages.
(cd "$build" && node_modules/.bin/esbuild main.js \
  --bundle --format=iife --platform=browser --target=es2020 --minify \
  --charset=ascii --legal-comments=eof --log-level=warning \
  '--banner:js=/* The faas console editor: CodeMirror 6 (MIT) bundled by scripts/vendor-console-assets.sh. Licences: LICENSES.txt */' \
  --metafile=meta.json --outfile="$out/editor.js")
cp "$build/node_modules/htmx.org/dist/htmx.min.js" "$out/htmx.min.js"

# LICENSES.txt and VERSIONS, from the packages' own package.json and licence files.
(cd "$build" && node - "$out" <<'EOF'
const fs = require("fs");
const path = require("path");
const out = process.argv[2];
const pkgOf = (file) => {
  const m = file.match(/^node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  return m && m[1];
};
// The packages with code in editor.js (tree-shaken ones, read but left out, are not listed).
const meta = JSON.parse(fs.readFileSync("meta.json", "utf8"));
const bundled = new Set();
for (const output of Object.values(meta.outputs)) {
  for (const [file, { bytesInOutput }] of Object.entries(output.inputs)) {
    if (bytesInOutput > 0 && pkgOf(file)) bundled.add(pkgOf(file));
  }
}
const info = (name) => {
  const dir = path.join("node_modules", name);
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
  const licenceFile = fs.readdirSync(dir).sort().find((f) => /^(licen[cs]e|copying)(\.(md|txt))?$/i.test(f));
  if (!licenceFile) throw new Error(`${name}: no licence file`);
  const licence = typeof pkg.license === "string" ? pkg.license : JSON.stringify(pkg.license);
  if (!/^(MIT|0BSD|ISC|BSD-[23]-Clause|Apache-2\.0)$/.test(licence)) throw new Error(`${name}: licence ${licence} not expected`);
  return { name, version: pkg.version, licence, text: fs.readFileSync(path.join(dir, licenceFile), "utf8").trim() };
};
const shipped = ["htmx.org", ...[...bundled].sort()].map(info);
const esbuild = info("esbuild");
let licences = "Licences of the third-party code in this folder.\n" +
  "htmx.min.js is htmx.org as published; editor.js bundles the other packages below.\n";
for (const p of shipped) {
  licences += `\n${"=".repeat(78)}\n${p.name} ${p.version} (${p.licence})\n${"=".repeat(78)}\n\n${p.text}\n`;
}
fs.writeFileSync(path.join(out, "LICENSES.txt"), licences);
let versions = "# name version: htmx.min.js, the packages bundled into editor.js, and the bundler\n";
for (const p of [...shipped, esbuild]) versions += `${p.name} ${p.version}\n`;
fs.writeFileSync(path.join(out, "VERSIONS"), versions);
EOF
)
(cd "$out" && sha256sum editor.js htmx.min.js >SHA256SUMS)

if [ "$check" = 1 ]; then
  differ=()
  for file in "${FILES[@]}"; do
    if ! cmp -s "$out/$file" "$DEST/$file"; then
      differ+=("$file")
      log "$DEST/$file differs from the rebuild (or is missing)"
    fi
  done
  if [ "${#differ[@]}" -gt 0 ]; then
    log "check failed: ${differ[*]}; run scripts/vendor-console-assets.sh and commit"
    exit 1
  fi
  log "check passed: ${FILES[*]} in $DEST are what the inputs build"
  exit 0
fi

mkdir -p "$DEST"
for file in "${FILES[@]}"; do
  install -m 0644 "$out/$file" "$DEST/$file"
done
log "wrote ${FILES[*]} to $DEST"
