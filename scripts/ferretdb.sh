#!/usr/bin/env bash
# Builds FerretDB v1 (a MongoDB-compatible server on SQLite) into .tools/bin/ferretdb with the Go toolchain.
# Used when neither MONGODB_URI nor a mongod on PATH is available.
set -euo pipefail
VERSION=v1.24.0
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/.tools/bin/ferretdb

# Output is captured before it is searched: a reader that stops early (grep -q, head) would make the pipeline fail
# with SIGPIPE under pipefail.
built_version() { [ -x "$OUT" ] && "$OUT" --version 2>/dev/null || true; }
if [[ "$(built_version)" == *"version: $VERSION"* ]]; then exit 0; fi
if ! command -v go >/dev/null; then
  echo "FerretDB needs the Go toolchain to build (https://go.dev/dl/), or set MONGODB_URI to a MongoDB server." >&2
  exit 1
fi
echo "==> building FerretDB $VERSION into .tools/bin (first run only, about a minute)"
src=$(go mod download -json "github.com/FerretDB/FerretDB@$VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
[ -n "$src" ] || { echo "could not download github.com/FerretDB/FerretDB@$VERSION through the Go module proxy" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$src/." "$work"
chmod -R u+w "$work"
# FerretDB's own build writes this file (from git describe); the module zip does not carry it.
echo "$VERSION" > "$work/build/version/version.txt"
mkdir -p "$(dirname "$OUT")"
(cd "$work" && CGO_ENABLED=0 go build -trimpath -o "$OUT" ./cmd/ferretdb)
v=$(built_version)
echo "${v%%$'\n'*}"
