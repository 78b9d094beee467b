#!/usr/bin/env bash
# The benchmark's peer (docs/benchmarks.md, scenario 8): the Temporal CLI (its dev server) built
# once per machine from the Go module proxy into the stack's cache, and the Python SDK (the
# `peer` extra). `make peer-temporal` runs this; `make test` never does.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="v1.5.1"
CACHE="${AION_CACHE_DIR:-$HOME/.cache/aion}"
export GOPATH="$CACHE/go" GOBIN="$CACHE/go/bin" GOCACHE="$CACHE/go/build-cache"
export GOMODCACHE="$CACHE/go/pkg/mod" GOFLAGS="-modcacherw"
BINARY="$GOBIN/temporal"
STAMP="$GOBIN/temporal.version"

if [[ -x "$BINARY" && "$(cat "$STAMP" 2>/dev/null)" == "$VERSION" ]]; then
  echo "[peer] temporal $VERSION already built: $BINARY"
else
  command -v go >/dev/null || { echo "[peer] needs Go (>= 1.23) on PATH" >&2; exit 1; }
  echo "[peer] building temporal $VERSION (about 5 minutes on 2 cores, 250 MB) into $GOBIN"
  mkdir -p "$GOBIN"
  nice -n 10 go install "github.com/temporalio/cli/cmd/temporal@$VERSION"
  echo "$VERSION" >"$STAMP"
fi
"$BINARY" --version  # go install stamps no CLI version: "0.0.0-DEV (Server 1.29.1, ...)"

echo "[peer] installing the Python SDK (the peer extra)"
.venv/bin/python -m pip install -q -e '.[dev,peer]'
echo "[peer] done: aion bench runs scenario 8 beside the Temporal dev server"
