#!/usr/bin/env bash
# Builds local stand-ins, from Debian packages only, for the upstream images that cannot be pulled
# on machines without a container registry:
#   faas-local-rust:1.95          builder for ./Dockerfile (RUST_IMAGE): gcc, libc6-dev, pkg-config,
#                                 make and this machine's Rust toolchain, trusting this machine's CAs
#   faas-local-slim:bookworm      runtime base for ./Dockerfile (RUNTIME_IMAGE): minbase + ca-certificates
#   faas-local-postgres:15        postgres, with the official image's entrypoint contract
#   faas-local-rabbitmq:3.10      rabbitmq-server with the management and Prometheus plugins
#   faas-local-prometheus:2.42    prometheus and promtool (and wget for healthchecks), like prom/prometheus
# Usage: scripts/local-images.sh [rust|slim|postgres|rabbitmq|prometheus ...]   (default: all)
# An image whose tag exists is skipped unless FORCE=1. RUST_TOOLCHAIN_DIR picks the toolchain
# copied into the builder (default: rustup's 1.95 toolchain).
# Then, for example:
#   docker build --build-arg RUST_IMAGE=faas-local-rust:1.95 \
#     --build-arg RUNTIME_IMAGE=faas-local-slim:bookworm --target api -t faas-api .
# shellcheck disable=SC2016 # mmdebstrap hooks are single-quoted: their "$1" is the rootfs.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[local-images] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

FORCE=${FORCE:-0}
SUITE=bookworm
RUST_VERSION=1.95
DEFAULT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

STAGE=
trap '[ -z "$STAGE" ] || rm -rf "$STAGE"' EXIT

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# Like debian:*-slim: merged /usr made as debootstrap does (the usrmerge package would pull in
# perl), no man pages, docs (but copyrights), info or translations.
MMDEBSTRAP_ARGS=(
  --quiet --variant=minbase
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --aptopt='APT::Install-Recommends "false"'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-include=/usr/share/locale/locale.alias'
  --dpkgopt='path-exclude=/usr/share/lintian/*'
  --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/*.bin "$1"/var/lib/apt/lists/* "$1"/var/log/apt/* "$1"/var/log/dpkg.log "$1"/var/cache/debconf/*-old'
)

# import_rootfs TAG [docker import --change ...]... -- [mmdebstrap args]...
# Makes a Debian rootfs with mmdebstrap and imports it as TAG.
import_rootfs() {
  local tag=$1
  shift
  local changes=(--change "ENV PATH=$DEFAULT_PATH")
  while (($#)) && [ "$1" != -- ]; do
    changes+=(--change "$1")
    shift
  done
  [ "${1:-}" = -- ] && shift
  # mmdebstrap's hooks chatter even with --quiet: keep it for when something fails.
  local out
  out=$(mktemp)
  if ! mmdebstrap "${MMDEBSTRAP_ARGS[@]}" "$@" "$SUITE" - 2>"$out" | docker import "${changes[@]}" - "$tag" >/dev/null; then
    tail -n 40 "$out" >&2
    rm -f "$out"
    die "could not make the rootfs of $tag"
  fi
  rm -f "$out"
}

# build_on_rootfs NAME TAG [mmdebstrap args]...: a rootfs with those packages and hooks, then
# docker/local/NAME/Dockerfile on top of it (entrypoint, config, user, ports).
build_on_rootfs() {
  local name=$1 tag=$2
  shift 2
  local rootfs="$tag-rootfs"
  import_rootfs "$rootfs" -- "$@"
  # The legacy builder: there is no buildx here. Its deprecation notice is only shown on failure.
  local out
  if ! out=$(DOCKER_BUILDKIT=0 docker build -q --build-arg BASE_IMAGE="$rootfs" -t "$tag" "docker/local/$name" 2>&1); then
    printf '%s\n' "$out" >&2
    die "could not build $tag"
  fi
  docker rmi "$rootfs" >/dev/null # only the tag: the image is the parent of $tag
}

# The toolchain directory of Rust $RUST_VERSION: RUST_TOOLCHAIN_DIR, rustup's toolchain of that
# version, or the sysroot of the rustc on PATH.
find_toolchain() {
  local rustup_home=${RUSTUP_HOME:-$HOME/.rustup} dir candidates=()
  [ -n "${RUST_TOOLCHAIN_DIR:-}" ] && candidates+=("$RUST_TOOLCHAIN_DIR")
  candidates+=("$rustup_home"/toolchains/"$RUST_VERSION"*-x86_64-unknown-linux-gnu "$rustup_home"/toolchains/stable-x86_64-unknown-linux-gnu)
  command -v rustc >/dev/null 2>&1 && candidates+=("$(rustc --print sysroot)")
  for dir in "${candidates[@]}"; do
    [ -x "$dir/bin/rustc" ] && [ -x "$dir/bin/cargo" ] || continue
    if "$dir/bin/rustc" -V | grep -q "^rustc $RUST_VERSION\."; then
      readlink -f "$dir"
      return
    fi
  done
  die "no Rust $RUST_VERSION toolchain with rustc and cargo found (set RUST_TOOLCHAIN_DIR)"
}

build_slim() {
  local tag=$1
  log "building $tag (minbase + ca-certificates)"
  import_rootfs "$tag" -- --include=ca-certificates
}

build_rust() {
  local tag=$1
  local src stage triple=x86_64-unknown-linux-gnu
  src=$(find_toolchain)
  log "building $tag with the toolchain in $src"
  STAGE=$(mktemp -d)
  stage=$STAGE
  # Only what `cargo build` needs: rustc, cargo, the compiler's libraries, the std of the host
  # target and the rust-lld linker that rustc uses on x86_64 Linux. No docs, sources, rustdoc,
  # clippy, rustfmt or sanitizer runtimes (nightly-only).
  mkdir -p "$stage/rust/bin" "$stage/rust/lib/rustlib/$triple/bin"
  cp -a "$src/bin/rustc" "$src/bin/cargo" "$stage/rust/bin/"
  cp -a "$src"/lib/librustc_driver-*.so "$src"/lib/libLLVM* "$stage/rust/lib/"
  cp -a "$src/lib/rustlib/$triple/lib" "$stage/rust/lib/rustlib/$triple/"
  rm -f "$stage/rust/lib/rustlib/$triple/lib"/librustc-*_rt.*.a
  cp -a "$src/lib/rustlib/$triple/bin"/{rust-lld,rust-objcopy,gcc-ld} "$stage/rust/lib/rustlib/$triple/bin/"
  log "toolchain subset: $(du -sh "$stage/rust" | cut -f1)"

  local version
  version=$("$src/bin/rustc" -V | awk '{print $2}')
  # The host's CA bundle: crates.io may only be reachable through a TLS-intercepting proxy whose
  # CA this machine trusts. Its extra certificates go to /usr/local/share/ca-certificates too,
  # so that an update-ca-certificates in the image keeps them.
  local hooks=(
    --customize-hook="copy-in $stage/rust /usr/local"
    --customize-hook='mkdir -p "$1"/usr/local/cargo/bin'
    --customize-hook='upload /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt'
  )
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    hooks+=(--customize-hook='sync-in /usr/local/share/ca-certificates /usr/local/share/ca-certificates')
  fi
  import_rootfs "$tag" \
    "ENV PATH=/usr/local/cargo/bin:/usr/local/rust/bin:$DEFAULT_PATH" \
    "ENV CARGO_HOME=/usr/local/cargo" \
    "ENV RUST_VERSION=$version" \
    -- --include=gcc,libc6-dev,pkg-config,make,ca-certificates "${hooks[@]}"
  rm -rf "$stage"
  docker run --rm "$tag" sh -c 'rustc -V && cargo -V' | sed 's/^/[local-images]   /' >&2
}

build_postgres() {
  local tag=$1
  log "building $tag (Debian's postgresql-15)"
  # The package makes a cluster 15/main, and ssl-cert a snakeoil key pair: the entrypoint
  # initdbs its own PGDATA, and a private key baked into an image is no use to anyone.
  build_on_rootfs postgres "$tag" --include=postgresql-15 \
    --customize-hook='rm -rf "$1"/etc/postgresql/15 "$1"/var/lib/postgresql/15 "$1"/var/log/postgresql/*' \
    --customize-hook='rm -f "$1"/etc/ssl/private/ssl-cert-snakeoil.key "$1"/etc/ssl/certs/ssl-cert-snakeoil.pem'
}

build_rabbitmq() {
  local tag=$1
  log "building $tag (Debian's rabbitmq-server)"
  # No cookie or node data from the package's postinst: each container makes its own cookie.
  build_on_rootfs rabbitmq "$tag" --include=rabbitmq-server \
    --customize-hook='rm -rf "$1"/var/lib/rabbitmq/.erlang.cookie "$1"/var/lib/rabbitmq/mnesia "$1"/var/log/rabbitmq/*'
}

build_prometheus() {
  local tag=$1
  log "building $tag (Debian's prometheus)"
  # wget: for healthchecks of /-/ready, as prom/prometheus has busybox's.
  # The web UI uses moment-timezone-with-data.min.js; the package's data/ tree is 200 MB.
  build_on_rootfs prometheus "$tag" --include=prometheus,wget \
    --dpkgopt='path-exclude=/usr/share/javascript/moment-timezone/data/*' \
    --customize-hook='rm -rf "$1"/var/lib/prometheus/* "$1"/var/log/prometheus/*'
}

all=(slim rust postgres rabbitmq prometheus)
declare -A TAGS=(
  [slim]=faas-local-slim:bookworm
  [rust]=faas-local-rust:$RUST_VERSION
  [postgres]=faas-local-postgres:15
  [rabbitmq]=faas-local-rabbitmq:3.10
  [prometheus]=faas-local-prometheus:2.42
)
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [ -n "${TAGS[$t]:-}" ] || die "unknown image '$t' (one of: ${all[*]})"
done

docker info >/dev/null 2>&1 || die "no Docker daemon answers (scripts/setup.sh starts one)"
command -v mmdebstrap >/dev/null 2>&1 || {
  log "installing mmdebstrap"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
}

for t in "${targets[@]}"; do
  tag=${TAGS[$t]}
  old_id=
  if have_image "$tag"; then
    if [ "$FORCE" != 1 ]; then
      log "$tag exists; skipping (FORCE=1 rebuilds it)"
      continue
    fi
    old_id=$(docker image inspect --format '{{.Id}}' "$tag")
  fi
  "build_$t" "$tag"
  # The image that a rebuild replaced, unless a container or another tag still uses it.
  if [ -n "$old_id" ] && [ "$old_id" != "$(docker image inspect --format '{{.Id}}' "$tag")" ]; then
    docker rmi "$old_id" >/dev/null 2>&1 || true
  fi
done
log "done: $(docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^faas-local-' | tr '\n' ' ')"
