#!/usr/bin/env bash
# Vendors Swagger UI for the api's /docs page: fetches swagger-ui-dist at a pinned version with
# npm (the package registry's own client), checks the tarball's SHA-256, and writes only what
# the page serves and the licence texts that must travel with it into api/assets/swagger-ui/,
# whence the api compiles them into its binary (include_bytes!). The page then needs no CDN.
#
# To move to another version: change VERSION, run once with SHA256= (empty) to see the new
# digest, check it against `npm view swagger-ui-dist@VERSION dist.integrity`, pin it, run
# again and commit the files it wrote.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[vendor-swagger-ui] %s\n' "$*" >&2; }

VERSION=5.35.0
SHA256=${SHA256-1b8e891893404ea4c3558b6a87e2a3e494e7eedba41168c2ece5800a391a6ea6}
DEST=api/assets/swagger-ui
# Served by /docs: the bundle (UI and its dependencies in one file) and its stylesheet. The
# licence (Apache-2.0), its NOTICE, and the licences of what the bundle includes go with them.
FILES=(swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "fetching swagger-ui-dist@$VERSION"
(cd "$work" && npm pack --silent "swagger-ui-dist@$VERSION" >/dev/null)
tarball="$work/swagger-ui-dist-$VERSION.tgz"
actual=$(sha256sum "$tarball" | cut -d' ' -f1)
if [ "$actual" != "$SHA256" ]; then
  log "SHA-256 of the tarball is $actual, expected ${SHA256:-(none pinned)}; nothing written"
  exit 1
fi
tar -xzf "$tarball" -C "$work" "${FILES[@]/#/package/}"
mkdir -p "$DEST"
for file in "${FILES[@]}"; do
  install -m 0644 "$work/package/$file" "$DEST/$file"
done
printf '%s\n' "$VERSION" >"$DEST/VERSION"
log "wrote ${FILES[*]} and VERSION ($VERSION) to $DEST"
