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
ENV CHANSHARE_LISTEN=0.0.0.0:8080 CHANSHARE_LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/chanshare"]
CMD ["serve"]
