#!/usr/bin/env bash
# Builds FerretDB v1 (a MongoDB-compatible server on SQLite) into .tools/bin/ferretdb with the Go toolchain, with its
# write commands made atomic (see below).
# Used when neither MONGODB_URI nor a mongod on PATH is available.
set -euo pipefail
VERSION=v1.24.0
# Marks our build (write commands serialised, see below), so an unpatched binary is rebuilt.
PATCH=-framefleet.1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/.tools/bin/ferretdb

# Output is captured before it is searched: a reader that stops early (grep -q, head) would make the pipeline fail
# with SIGPIPE under pipefail.
built_version() { [ -x "$OUT" ] && "$OUT" --version 2>/dev/null || true; }
if [[ "$(built_version)" == *"version: $VERSION$PATCH"* ]]; then exit 0; fi
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
echo "$VERSION$PATCH" > "$work/build/version/version.txt"
# FerretDB v1 applies an update as read, modify, write back, outside any transaction (FerretDB issue #3040): two
# concurrent conditional updates of one document both "win", and concurrent $set/$inc lose writes. MongoDB makes each
# single-document write atomic, and FrameFleet's claims and fenced transitions rely on that. Serialising the write
# commands in the server restores it (the tests' servers are small; reads stay concurrent).
cat > "$work/internal/handler/framefleet_serialized_writes.go" <<'GO'
package handler

import (
	"context"
	"sync"

	"github.com/FerretDB/wire"
)

var serializedWritesMu sync.Mutex

// serializedWrite runs one write command at a time, so that each is atomic against the others.
func serializedWrite(f func(context.Context, *wire.OpMsg) (*wire.OpMsg, error)) func(context.Context, *wire.OpMsg) (*wire.OpMsg, error) {
	return func(ctx context.Context, msg *wire.OpMsg) (*wire.OpMsg, error) {
		serializedWritesMu.Lock()
		defer serializedWritesMu.Unlock()
		return f(ctx, msg)
	}
}
GO
for cmd in MsgDelete MsgFindAndModify MsgInsert MsgUpdate; do
  grep -q "Handler: h.$cmd," "$work/internal/handler/commands.go" || { echo "FerretDB $VERSION: no $cmd handler to serialise" >&2; exit 1; }
  sed -i "s/Handler: h.$cmd,/Handler: serializedWrite(h.$cmd),/" "$work/internal/handler/commands.go"
done
mkdir -p "$(dirname "$OUT")"
(cd "$work" && CGO_ENABLED=0 go build -trimpath -o "$OUT" ./cmd/ferretdb)
v=$(built_version)
echo "${v%%$'\n'*}"
