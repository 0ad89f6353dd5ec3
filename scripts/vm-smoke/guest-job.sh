#!/usr/bin/env bash
# Inside the vm-smoke VM (run once at boot from the job disk, as /run.sh): unpacks the repository, runs
# the README's set-up (./scripts/up.sh), then the smoke test, and leaves its results in <job>/out:
# result (exit code), timings, setup.log, smoke.log, daemon.log. Output also goes to the serial console.
set -uo pipefail
shopt -s extglob
JOB=${1:?job folder}
OUT=$JOB/out
SRC=/root/stasis
mkdir -p "$OUT"
# A systemd service has no HOME; `sudo ./scripts/up.sh` from a shell does (go build needs it for its cache).
export HOME=/root
: > "$OUT/timings"
T0=$SECONDS

say() { printf '\n\033[1m==> [guest +%ss] %s\033[0m\n' "$((SECONDS - T0))" "$*"; }
timing() { printf '%-44s %6s s\n' "$1" "$2" | tee -a "$OUT/timings"; }

# Prefixes each line with the seconds since the phase began and records when each "==>" step started,
# so the set-up's own steps (npm, build, base template, daemon, demo) get durations too.
stamp_lines() {
  local log=$1 start=$SECONDS prev_name="" prev_at=0 line name
  while IFS= read -r line; do
    printf '[+%4ss] %s\n' "$((SECONDS - start))" "$line" | tee -a "$log"
    if [[ $line == *"==> "* ]]; then
      name=${line#*==> }; name=${name//$'\e'\[*([0-9;])m/}
      [ -n "$prev_name" ] && timing "  up.sh: $prev_name" "$((SECONDS - prev_at))"
      prev_name=$name prev_at=$SECONDS
    fi
  done
  [ -n "$prev_name" ] && timing "  up.sh: $prev_name" "$((SECONDS - prev_at))"
  return 0
}
# shellcheck disable=SC1091
say "host: $(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r), $(nproc) CPUs, $(free -m | awk '/^Mem/{print $2}') MiB"
echo "cgroup file system at /sys/fs/cgroup: $(stat -fc %T /sys/fs/cgroup) (cgroup2fs = pure cgroup v2)"
echo "controllers: $(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null || echo '(none: not cgroup v2)')"
echo "repository: $(cat "$JOB/revision")"
timing "boot until job start (uptime)" "$(cut -d. -f1 /proc/uptime)"
if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then
  echo "not a pure cgroup v2 host: this run would not test what it is for" >&2
  echo 3 > "$OUT/result"; sync; echo "STASIS-VM-JOB-DONE result=3"; exit 0
fi

say "this host's network environment: local CA certificates, npm settings"
# The host's CAs (a TLS-re-signing egress proxy) and npm settings that work without nodejs.org: native
# modules build against the Node.js headers copied into the image instead of downloading them.
if compgen -G "$JOB/ca/*.crt" >/dev/null; then
  cp "$JOB"/ca/*.crt /usr/local/share/ca-certificates/ && update-ca-certificates >/dev/null
  echo "trusting" "$JOB"/ca/*.crt
fi
mkdir -p /usr/etc
printf 'cafile=/etc/ssl/certs/ca-certificates.crt\nnodedir=/usr\n' > /usr/etc/npmrc
export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt

say "unpacking the repository into $SRC"
mkdir -p "$SRC" && tar -xf "$JOB/repo.tar" -C "$SRC"

say "set-up: ./scripts/up.sh (the README's first command)"
t=$SECONDS
(cd "$SRC" && ./scripts/up.sh) 2>&1 | stamp_lines "$OUT/setup.log"
setup_rc=${PIPESTATUS[0]}
timing "up.sh total (exit $setup_rc)" "$((SECONDS - t))"

smoke_rc=0
if [ "$setup_rc" = 0 ]; then
  say "smoke test: node scripts/vm-smoke/smoke.mjs"
  t=$SECONDS
  (cd "$SRC" && node scripts/vm-smoke/smoke.mjs) 2>&1 | tee "$OUT/smoke.log"
  smoke_rc=${PIPESTATUS[0]}
  timing "smoke test total (exit $smoke_rc)" "$((SECONDS - t))"
else
  echo "set-up failed: no smoke test" | tee "$OUT/smoke.log"
fi

cp /var/log/stasis.log "$OUT/daemon.log" 2>/dev/null || true
timing "job total" "$((SECONDS - T0))"
if [ "$setup_rc" != 0 ]; then echo 2 > "$OUT/result"; elif [ "$smoke_rc" != 0 ]; then echo 1 > "$OUT/result"; else echo 0 > "$OUT/result"; fi
say "done: result $(cat "$OUT/result") (0 pass, 1 smoke failed, 2 set-up failed)"
sync
# The host watches for this line (and stops the VM should it not power off).
echo "STASIS-VM-JOB-DONE result=$(cat "$OUT/result")"
