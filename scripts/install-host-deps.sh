#!/usr/bin/env bash
# Installs the host packages Stasis needs, only where missing. Idempotent; needs root.
# Debian 12: runsc and a recent Go come from bookworm-backports. Ubuntu 24.04: runsc from gVisor's release bucket.
set -euo pipefail
log() { printf '[install-host-deps] %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then log "must run as root"; exit 1; fi
. /etc/os-release
export DEBIAN_FRONTEND=noninteractive

need=()
for pair in crun:crun mmdebstrap:mmdebstrap ip:iproute2 unshare:util-linux nsenter:util-linux \
            make:make g++:g++ python3:python3 curl:curl \
            umoci:umoci skopeo:skopeo nft:nftables iptables:iptables openssl:openssl; do
  cmd=${pair%%:*} pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
# Preview URLs are <port>-<sandbox>.localhost: browsers and curl resolve *.localhost themselves, programs
# using the system resolver (Node, Python) need nss-myhostname, which answers it with loopback.
getent hosts stasis-check.localhost >/dev/null 2>&1 || need+=(libnss-myhostname)

updated=0
apt_update() { [ "$updated" = 1 ] || { log "apt-get update"; apt-get update -qq; updated=1; }; }

if [ "${ID}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ]; then
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding bookworm-backports"
    echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/stasis-backports.list
  fi
  bp=()
  command -v runsc >/dev/null 2>&1 || bp+=(runsc)
  # The agent needs Go >= 1.21 (for min/max and slices); bookworm's own golang is 1.19.
  if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/lib/go-1.22/bin/go ]; then bp+=(golang-1.22-go); fi
  if [ ${#bp[@]} -gt 0 ]; then apt_update; log "installing from backports: ${bp[*]}"; apt-get install -y -qq -t bookworm-backports "${bp[@]}" >/dev/null; fi
else
  if ! command -v go >/dev/null 2>&1; then need+=(golang-go); fi
  if ! command -v runsc >/dev/null 2>&1; then
    apt_update
    if apt-cache show runsc >/dev/null 2>&1; then need+=(runsc); else
      log "runsc is not packaged here: fetching gVisor's release"
      url=https://storage.googleapis.com/gvisor/releases/release/latest/$(uname -m)
      tmp=$(mktemp -d); curl -fsSL -o "$tmp/runsc" "$url/runsc"; curl -fsSL -o "$tmp/runsc.sha512" "$url/runsc.sha512"
      (cd "$tmp" && sha512sum -c runsc.sha512 >/dev/null); install -m 0755 "$tmp/runsc" /usr/local/bin/runsc; rm -rf "$tmp"
    fi
  fi
fi

if [ ${#need[@]} -gt 0 ]; then
  apt_update; log "installing: ${need[*]}"; apt-get install -y -qq "${need[@]}" >/dev/null
fi
log "host packages present"
