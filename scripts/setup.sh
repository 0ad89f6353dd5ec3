#!/usr/bin/env bash
# Everything Stasis needs on this host, idempotent: host packages, npm dependencies, the TypeScript build,
# the guest agent and the base template. Safe to re-run; each step skips what is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then echo "stasis set-up needs root (runtimes, mounts and cgroups): re-run with sudo" >&2; exit 1; fi

step "host packages (runsc, crun, go, mmdebstrap)"
bash scripts/install-host-deps.sh

step "npm dependencies"
stamp=node_modules/.stasis-lock-hash
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  # `npm install` rather than `npm ci`: some npm 11 releases write lockfiles without other platforms'
  # optional packages and then refuse their own lockfile in `npm ci`. The lockfile still pins versions.
  npm install --no-audit --no-fund
  echo "$want" > "$stamp"
else
  echo "up to date" >&2
fi

step "build (TypeScript + guest agent + web console)"
npx tsc -b
# The console (packages/console, Vite) is built into packages/daemon/console, which the daemon serves.
npm run build --silent -w @stasis/console
bash packages/agent/build.sh

step "base template"
node packages/cli/dist/main.js template build --builtin base

step "code-interpreter template (examples/templates/code-interpreter)"
# Through a daemon of its own (builds run in gVisor and end in a snapshot); a rebuild with nothing changed
# makes no new version. First build ~4-5 min (Debian packages), later runs seconds.
bash scripts/build-code-template.sh

ln -sf "$PWD/packages/cli/dist/main.js" /usr/local/bin/stasis
chmod +x packages/cli/dist/main.js
