#!/usr/bin/env bash
# Builds the guest agent as a static binary: packages/agent/dist/stasis-agent.
# Uses `go` from PATH when it is Go >= 1.22, else the newest /usr/lib/go-1.2*.
# Pass GOARCH=arm64 (etc.) in the environment to cross-compile.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
# Go needs a cache folder; without HOME (a systemd unit, cloud-init) it finds none and fails.
if [[ -z ${HOME:-} && -z ${GOCACHE:-} ]]; then export GOCACHE=/var/cache/stasis-go-build; fi

# go_at_least_1_22 GO: whether the toolchain GO is Go 1.22 or newer.
go_at_least_1_22() {
  local v major minor
  v=$("$1" env GOVERSION 2>/dev/null) || return 1 # e.g. go1.22.12, go1.23rc1
  v=${v#go}
  major=${v%%.*}
  minor=${v#*.}
  minor=${minor%%[!0-9]*}
  [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]] || return 1
  ((major > 1 || (major == 1 && minor >= 22)))
}

find_go() {
  local candidate
  if candidate=$(command -v go) && go_at_least_1_22 "$candidate"; then
    echo "$candidate"
    return
  fi
  for candidate in $(ls -d /usr/lib/go-1.2*/bin/go 2>/dev/null | sort -rV); do
    if go_at_least_1_22 "$candidate"; then
      echo "$candidate"
      return
    fi
  done
  echo "build.sh: Go >= 1.22 not found (PATH or /usr/lib/go-1.2*/bin/go)" >&2
  return 1
}

GO=$(find_go)
mkdir -p dist
# GOTOOLCHAIN=local: never download a toolchain; -buildvcs=false: the binary
# must not depend on the state of the git checkout.
CGO_ENABLED=0 GOTOOLCHAIN=local "$GO" build -trimpath -buildvcs=false \
  -ldflags "-s -w" -o dist/stasis-agent .
echo "built $(pwd)/dist/stasis-agent ($(stat -c %s dist/stasis-agent) bytes, $("$GO" env GOVERSION))"
