# One image for every role: `chanshare gateway|commands|projectors|content|replay ...`.
# Build: docker build -t chanshare .   (not built in CI: no Docker engine runs there)

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin chanshare \
 && cp target/release/chanshare /chanshare

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /app --create-home chanshare
COPY --from=build /chanshare /usr/local/bin/chanshare
USER 10001:10001
WORKDIR /app
# Two malloc arenas, not 8 per core: a gateway churning 1 000 sockets held 353 MiB after 6 min
# with glibc's default and 97 MiB with this (docs/decisions/0007-malloc-arenas.md).
ENV CHANSHARE_LISTEN=0.0.0.0:8080 CHANSHARE_LOG_FORMAT=json MALLOC_ARENA_MAX=2
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/chanshare"]
CMD ["serve"]
