#!/usr/bin/env bash
# One command from a fresh clone to a running daemon and a demo: sudo ./scripts/up.sh
# Idempotent: re-running rebuilds what changed and restarts the daemon (running sandboxes are reattached).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

STASIS_PORT=${STASIS_PORT:-7070}
LOG=/var/log/stasis.log
PIDFILE=/run/stasis/daemon.pid
mkdir -p /run/stasis

printf '\n\033[1m==> daemon\033[0m\n' >&2
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  echo "restarting the running daemon (pid $(cat "$PIDFILE")) to pick up this build" >&2
  kill -TERM "$(cat "$PIDFILE")"
  # A graceful stop hibernates the running sandboxes first: that can take a while with many of them.
  for i in $(seq 1 3000); do
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
    [ $((i % 100)) = 0 ] && echo "waiting for the old daemon to finish hibernating its sandboxes ($((i / 10)) s)" >&2
    sleep 0.1
  done
fi
STASIS_PORT=$STASIS_PORT setsid nohup node packages/cli/dist/main.js serve >>"$LOG" 2>&1 < /dev/null &
echo $! > "$PIDFILE"
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$STASIS_PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$STASIS_PORT/healthz" >/dev/null || { echo "daemon did not come up; see $LOG" >&2; tail -20 "$LOG" >&2; exit 1; }
echo "stasis daemon: http://127.0.0.1:$STASIS_PORT (pid $(cat "$PIDFILE"), logs $LOG, API key in /var/lib/stasis/api-key)" >&2

printf '\n\033[1m==> demo\033[0m\n' >&2
STASIS_API_URL="http://127.0.0.1:$STASIS_PORT" node examples/demo.mjs
printf '\n\033[1m==> the same daemon through the unmodified e2b SDK\033[0m\n' >&2
STASIS_API_URL="http://127.0.0.1:$STASIS_PORT" node examples/e2b-demo.mjs
