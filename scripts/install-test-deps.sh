#!/usr/bin/env bash
# What the tests need beyond the daemon's own packages, only where missing. Idempotent; needs root.
# Chromium for the browser checks (headless, driven by playwright-core), tmux for driving `stasis shell`.
set -euo pipefail
log() { printf '[install-test-deps] %s\n' "$*" >&2; }
. /etc/os-release
export DEBIAN_FRONTEND=noninteractive
cd "$(dirname "$0")/.."

need=()
command -v tmux >/dev/null 2>&1 || need+=(tmux)
chromium_found() { for c in chromium chromium-browser google-chrome; do command -v "$c" >/dev/null 2>&1 && [ "$(readlink -f "$(command -v "$c")")" != /usr/bin/snap ] && return 0; done; return 1; }
# Debian packages Chromium; Ubuntu's chromium package is a snap, which does not run in containers.
if ! chromium_found && [ "${ID}" = debian ]; then need+=(chromium); fi
if [ ${#need[@]} -gt 0 ]; then
  log "installing: ${need[*]}"
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! chromium_found && [ ! -x "$(node -e 'console.log(require("playwright-core").chromium.executablePath())')" ]; then
  log "no packaged Chromium here: fetching playwright's build"
  npx playwright-core install --with-deps chromium >/dev/null
fi
log "test packages present"
