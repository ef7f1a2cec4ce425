#!/usr/bin/env bash
# The main job on a fresh machine: find/build Ollama, start the shared daemon, import SmolLM2, show status,
# generate, and run a short benchmark with charts. Leaves the daemon running (`sollama stop` ends it).
set -euo pipefail
cd "$(dirname "$0")/.."
S=.venv/bin/sollama
MODEL="${DEMO_MODEL:-smollm2:135m}"
if ! command -v ollama >/dev/null 2>&1 && [ -z "${SOLLAMA_OLLAMA_BIN:-}" ]; then
  export SOLLAMA_OLLAMA_BIN="$(bash scripts/install-ollama.sh)"
fi
GGUF="$(bash scripts/fetch-test-model.sh)"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step sollama --version;                 $S --version
step sollama config show;               $S config show
step sollama start;                     $S start
if ! $S models list --json | grep -q "\"$MODEL\""; then
  step sollama models import "$GGUF" --name "$MODEL"; $S models import "$GGUF" --name "$MODEL"
fi
step sollama status;                    $S status
step sollama models list;               $S models list
step sollama memory --save;             $S memory --save
step sollama generate -m "$MODEL" "Write one sentence about the sea." --max-tokens 40 --verbose
stats=$(mktemp)
$S generate -m "$MODEL" "Write one sentence about the sea." --max-tokens 40 --verbose 2>"$stats"
echo; cat "$stats" >&2; rm -f "$stats"
step sollama bench -m "$MODEL" --requests 8 --concurrency 2 --max-tokens 32 --report --label demo
$S bench -m "$MODEL" --requests 8 --concurrency 2 --max-tokens 32 --report --label demo
step sollama report;                    $S report
printf '\nThe daemon is still running: `%s stop` stops it.\n' "$S"
