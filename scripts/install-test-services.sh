#!/usr/bin/env bash
# Install the real programs the test suite drives, from Debian's packages, when they are missing (idempotent):
#   chromium       the HTML report's browser test (Playwright drives this executable; nothing is downloaded)
#   prometheus     for promtool (the gateway's alert rules, scrape config and exposition are checked with it)
#   redis-server   the fleet's shared state (tests start their own server on a free loopback port)
#   postgresql     the fleet's key and usage store (likewise: own data dir, own port, stopped by PID)
# Exit 1 when something is missing and cannot be installed (not root, or no apt-get); the Makefile turns that into
# a warning locally (those tests then skip) and a failure under CI=true (where they never skip).
set -euo pipefail

log() { printf '[install-test-services] %s\n' "$*" >&2; }

need=()
command -v chromium >/dev/null || need+=(chromium)
command -v promtool >/dev/null || need+=(prometheus)
command -v redis-server >/dev/null || need+=(redis-server)
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  log "missing: ${need[*]} (install them with your package manager: apt-get install ${need[*]})"
  exit 1
fi
log "installing ${need[*]}"
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
# the packages' own services are not used: tests start private instances
log "installed ${need[*]}"
