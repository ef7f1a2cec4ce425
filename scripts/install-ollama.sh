#!/usr/bin/env bash
# Build the pinned Ollama (CPU engine embedded through cgo) into the sollama tools cache.
# v0.23.4 (the release DESIGN.md names) is refused by the Go module proxy ("not available"); 0.23.2 is the
# newest 0.23.x it serves with a verifiable checksum.
# Idempotent: a binary that already reports the pinned version is kept as is.
set -euo pipefail

VERSION="${OLLAMA_VERSION:-0.23.2}"
TOOLS="${SOLLAMA_TOOLS:-$HOME/.cache/sollama/tools}"
BIN="$TOOLS/bin/ollama"
START=$(date +%s)

log() { printf '[install-ollama] %s\n' "$*" >&2; }
elapsed() { echo "$(( $(date +%s) - START ))s"; }

if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "$VERSION"; then
  log "ollama $VERSION already at $BIN ($(elapsed))"
  echo "$BIN"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  log "Go is not installed, so Ollama cannot be built from source."
  log "Install Ollama instead (https://ollama.com/download) and put 'ollama' on PATH,"
  log "or point sollama at it with SOLLAMA_OLLAMA_BIN=/path/to/ollama."
  exit 1
fi

mkdir -p "$TOOLS/bin" "$TOOLS/include"
INC="$TOOLS/include"

# Module zips drop nested vendor/ folders; llama.cpp's cgo build needs these header-only libraries.
fetch_headers() {
  if [ ! -f "$INC/nlohmann/json.hpp" ] || [ ! -f "$INC/stb/stb_image.h" ]; then
    if [ -f /usr/include/nlohmann/json.hpp ] && [ -f /usr/include/stb/stb_image.h ]; then
      :
    else
      log "installing header-only libraries from Debian (nlohmann-json3-dev, libstb-dev)"
      if command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nlohmann-json3-dev libstb-dev) >&2
      else
        log "apt-get not found: install nlohmann json and stb headers into $INC yourself"; exit 1
      fi
    fi
    for d in nlohmann stb; do
      [ -d "$INC/$d" ] || cp -r "/usr/include/$d" "$INC/$d"
    done
  fi
  if [ ! -f "$INC/miniaudio/miniaudio.h" ]; then
    log "fetching miniaudio.h from the miniaudio sdist"
    local tmp; tmp=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --no-binary :all: -d "$tmp" miniaudio >&2
    local sdist; sdist=$(ls "$tmp"/miniaudio-*.tar.gz | head -n1)
    local member; member=$(tar -tzf "$sdist" | grep -E '(^|/)miniaudio/miniaudio\.h$' | head -n1)
    [ -n "$member" ] || { log "miniaudio.h not found in $sdist"; exit 1; }
    mkdir -p "$INC/miniaudio"
    tar -xzf "$sdist" -C "$tmp" "$member"
    cp "$tmp/$member" "$INC/miniaudio/miniaudio.h"
    rm -rf "$tmp"
  fi
}

fetch_headers
log "building github.com/ollama/ollama@v$VERSION (first build takes several minutes)"
export CGO_ENABLED=1
export CGO_CPPFLAGS="${CGO_CPPFLAGS:-} -I$INC -I$INC/nlohmann -I$INC/stb -I$INC/miniaudio"
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
GOBIN="$TOOLS/bin" go install \
  -ldflags "-X=github.com/ollama/ollama/version.Version=$VERSION -X=github.com/ollama/ollama/server.mode=release" \
  "github.com/ollama/ollama@v$VERSION"

"$BIN" --version >&2 || true
log "built $BIN in $(elapsed)"
echo "$BIN"
