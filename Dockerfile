# Images of the platform's two services, built from one builder stage:
#   docker build --target api    -t faas-api .
#   docker build --target worker -t faas-worker .
# Without a registry, build with the local stand-ins of scripts/local-images.sh:
#   --build-arg RUST_IMAGE=faas-local-rust:1.95 --build-arg RUNTIME_IMAGE=faas-local-slim:bookworm
# Written for the legacy builder too (no BuildKit): caching comes from layer order, not from
# RUN --mount caches.
ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
# Dependencies first: manifests and the lock file with stub sources, so that the layer holding
# the compiled dependencies is reused until a manifest or Cargo.lock changes. Every member's
# manifest is needed because cargo loads the whole workspace (and --locked checks the lock).
COPY Cargo.toml Cargo.lock ./
COPY common/Cargo.toml common/
COPY api/Cargo.toml api/
COPY worker/Cargo.toml worker/
COPY bench/Cargo.toml bench/
COPY cli/Cargo.toml cli/
RUN for m in common api worker bench cli; do mkdir -p "$m/src" && : >"$m/src/lib.rs"; done \
 && for m in api worker bench cli; do echo 'fn main() {}' >"$m/src/main.rs"; done \
 && cargo build --release --locked -p api -p worker -p cli

# The real sources. bench is not built, so its stubs stay and its edits do not bust this cache.
# api/migrations is embedded at compile time (refinery's embed_migrations!).
COPY common/src common/src
COPY api/src api/src
COPY api/migrations api/migrations
# Swagger UI's files, compiled into the api with include_bytes! (GET /docs).
COPY api/assets api/assets
COPY worker/src worker/src
# The `faas` CLI, which the api image carries (`docker compose exec api faas ...`).
COPY cli/src cli/src
# COPY keeps the files' mtimes, which can be older than the stubs' build: touch them so that
# cargo rebuilds the workspace crates instead of keeping the stub artifacts.
RUN find common/src api/src api/migrations api/assets worker/src cli/src -type f -exec touch {} + \
 && cargo build --release --locked -p api -p worker -p cli \
 && mkdir -p /out && cp target/release/api target/release/worker target/release/faas /out/

# Shared runtime base: no compiler, no cargo. ca-certificates for amqps:// brokers
# (rustls reads the system store); installed only when the base lacks it, so that a base which
# has it (faas-local-slim) needs no network here.
FROM ${RUNTIME_IMAGE} AS runtime
RUN if [ ! -s /etc/ssl/certs/ca-certificates.crt ]; then \
      apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi

FROM runtime AS worker
COPY --from=builder /out/worker /usr/local/bin/worker
# Root on purpose: the worker drives the host's Docker through a mounted /var/run/docker.sock,
# which is root's. Access to that socket is root-equivalent anyway, so a non-root uid would
# gain nothing and would need the host's docker gid, which differs between hosts.
ENV METRICS_ADDR=0.0.0.0:9101
EXPOSE 9101
ENTRYPOINT ["/usr/local/bin/worker"]

FROM runtime AS api
COPY --from=builder /out/api /usr/local/bin/api
COPY --from=builder /out/faas /usr/local/bin/faas
# A named user rather than a bare uid: libraries that look the user up (the Postgres client's
# default user name) find an entry. --no-log-init: a high uid would otherwise write a large
# /var/log/lastlog into the layer.
RUN groupadd --gid 10001 faas \
 && useradd --uid 10001 --gid faas --no-log-init --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin faas
USER 10001:10001
ENV API_ADDR=0.0.0.0:8000 \
    METRICS_ADDR=0.0.0.0:9100
EXPOSE 8000 9100
ENTRYPOINT ["/usr/local/bin/api"]
