#!/usr/bin/env bash
# Builds the built-in code-interpreter template (examples/templates/code-interpreter) into the shared
# templates folder through a daemon of its own (template builds and snapshots are the daemon's work), then
# stops it. Idempotent: a build whose steps are all cached and whose spec is unchanged makes no new version.
set -euo pipefail
cd "$(dirname "$0")/.."
templates=${STASIS_TEMPLATES_DIR:-${STASIS_DATA_DIR:-/var/lib/stasis}/templates}
data=$(mktemp -d /var/lib/stasis-setup-XXXXXX)
log="$data/daemon.log"
key="sk_setup_$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
STASIS_DATA_DIR="$data" STASIS_RUN_DIR="/run/stasis-setup-${data##*-}" STASIS_TEMPLATES_DIR="$templates" \
  STASIS_API_KEY="$key" STASIS_PORT=0 STASIS_LOG_LEVEL=info STASIS_NETWORK_RANGE="10.211.$((RANDOM % 256)).0/24" \
  node packages/cli/dist/main.js serve >"$log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT
url=""
for _ in $(seq 1 600); do
  url=$(grep -o '"url":"http:[^"]*"' "$log" 2>/dev/null | head -n1 | cut -d'"' -f4 || true)
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "the set-up daemon did not start" >&2; cat "$log" >&2; exit 1; }
STASIS_API_URL="$url" STASIS_API_KEY="$key" node packages/cli/dist/main.js template build examples/templates/code-interpreter --name code-interpreter
