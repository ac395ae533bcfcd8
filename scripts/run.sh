#!/usr/bin/env bash
# The entry point of `npm start` and `npm test`: makes sure Node 24, the dependencies and a MongoDB-compatible server
# are there (installing them into the ignored .tools/ folder when not), then starts the platform or runs the tests.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
NODE_VERSION=24.21.0
TOOLS=$ROOT/.tools

node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

ensure_node() {
  local sys
  sys=$(command -v node || true)
  if [ -n "$sys" ] && [ "$(node_major "$sys")" -ge 24 ]; then return; fi
  if [ ! -x "$TOOLS/node/bin/node" ] || [ "$(node_major "$TOOLS/node/bin/node")" -lt 24 ]; then
    local arch
    case "$(uname -m)" in x86_64) arch=x64 ;; aarch64 | arm64) arch=arm64 ;; *) echo "unsupported CPU $(uname -m)" >&2; exit 1 ;; esac
    echo "==> installing Node $NODE_VERSION into .tools/node (npm package node-linux-$arch)"
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "node-linux-$arch@$NODE_VERSION" >/dev/null && tar xzf node-linux-*.tgz)
    rm -rf "$TOOLS/node"
    mkdir -p "$TOOLS"
    mv "$tmp/package" "$TOOLS/node"
    rm -rf "$tmp"
  fi
  export PATH="$TOOLS/node/bin:$PATH"
}

ensure_deps() {
  local stamp=node_modules/.framefleet-lock
  local want
  want=$(sha256sum package-lock.json package.json */package.json services/*/package.json | sha256sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
  echo "==> installing dependencies (npm install)"
  # ffmpeg-static downloads its own binary unless pointed at one; the system ffmpeg serves here.
  FFMPEG_BIN=${FFMPEG_BIN:-$(command -v ffmpeg || true)} npm install --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
}

ensure_system_tools() {
  local missing=()
  command -v ffmpeg >/dev/null || missing+=(ffmpeg)
  command -v nats-server >/dev/null || [ -n "${NATS_URL:-}" ] || missing+=(nats-server)
  # The browser end-to-end test drives a real Chromium (CHROMIUM_PATH names another one).
  [ "${1:-}" != test ] || [ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || missing+=(chromium)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "missing: ${missing[*]}. On Debian/Ubuntu: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
}

ensure_database() {
  if [ -n "${MONGODB_URI:-}" ] || command -v mongod >/dev/null; then return; fi
  bash scripts/ferretdb.sh
}

ensure_node
ensure_system_tools "${1:-}"
ensure_deps
ensure_database

case "${1:-}" in
  start)
    exec node scripts/local.ts
    ;;
  test)
    echo "==> buf lint"
    npx buf lint
    echo "==> generated code is up to date"
    node scripts/gen-check.ts
    echo "==> typecheck"
    npx tsc -p tsconfig.json
    echo "==> tests"
    # The reliability suite records its counts (faults survived, inputs handled, breaches) as it goes; the summary
    # prints them after the run.
    rm -f reliability/results/counts.jsonl
    rc=0
    # The services' own tests mostly wait on child processes, NATS and the database: two files at a time. The
    # platform-wide files (e2e, reliability) run one at a time: they time fault recovery and sample memory, and two
    # whole platforms at once on two cores would measure each other.
    node --test --test-timeout=120000 --test-concurrency=2 "services/*/src/**/*.test.ts" "deploy/**/*.test.ts" \
      "bench/**/*.test.ts" || rc=$?
    node --test --test-timeout=120000 --test-concurrency=1 "e2e/**/*.test.ts" "reliability/**/*.test.ts" || rc=$?
    node reliability/summary.ts || rc=$((rc == 0 ? 1 : rc))
    exit "$rc"
    ;;
  *)
    echo "usage: scripts/run.sh start|test" >&2
    exit 2
    ;;
esac
