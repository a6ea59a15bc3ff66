# One image for every role: `chanshare gateway|commands|projectors|content|replay ...`.
#
# The release binary is built first and copied in; the base image is a build argument, so the one
# file builds with Docker anywhere and with podman on a machine without a registry:
#   elsewhere:  cargo build --release --locked --bin chanshare && docker build -t chanshare .
#   here:       ./dev/image   (a base of Debian's libc6, libgcc-s1 and ca-certificates made by
#               mmdebstrap, imported into podman; docs/operations.md, "The image")
# Whatever the base, it needs glibc, libgcc_s and a CA bundle at /etc/ssl/certs; nothing runs in
# it at build time (the local base has no shell). .dockerignore sends only the binary.
ARG BASE=gcr.io/distroless/cc-debian12:nonroot
FROM ${BASE}
COPY target/release/chanshare /usr/local/bin/chanshare
USER 10001:10001
WORKDIR /tmp
# Two malloc arenas, not 8 per core: a gateway churning 1 000 sockets held 353 MiB after 6 min
# with glibc's default and 97 MiB with this (docs/decisions/0007-malloc-arenas.md).
ENV CHANSHARE_LISTEN=0.0.0.0:8080 CHANSHARE_LOG_FORMAT=json MALLOC_ARENA_MAX=2 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
EXPOSE 8080
# The binary is PID 1 and drains on SIGTERM itself (no init needed: it handles the signal).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/chanshare"]
CMD ["serve"]
