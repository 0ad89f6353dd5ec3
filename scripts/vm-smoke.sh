#!/usr/bin/env bash
# Boots a throwaway Debian 12 VM with pure cgroup v2 under QEMU, runs the README's set-up
# (./scripts/up.sh) inside it on a copy of this repository, then a smoke test on both runtimes
# (scripts/vm-smoke/smoke.sh). Not part of CI: run it by hand, as root. See --help.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

CACHE=/var/cache/stasis-vm
MEMORY_MIB=6144
CPUS=2
ACCEL=auto
SOURCE="head"
KEEP=0
REBUILD=0
IMAGE_ONLY=0
TIMEOUT=6h
MIRROR=http://deb.debian.org/debian

usage() {
  cat <<EOF
Usage: sudo scripts/vm-smoke.sh [options]

Boots a throwaway Debian 12 (bookworm) VM under QEMU, kernel booted with pure cgroup v2
(systemd.unified_cgroup_hierarchy=1), copies this repository in, runs ./scripts/up.sh there and then a
smoke test on gVisor and crun: create, exec, files, limits, pause, wake, hibernate + wake (gVisor),
fork (gVisor), kill -9 of the daemon + restart, kill. Prints a PASS/FAIL line per step and exits non-zero
when the set-up or any step fails.

Options:
  --cache DIR        where the VM image (rootfs, kernel, initrd) is built once and kept (default $CACHE)
  --memory MiB       VM memory (default $MEMORY_MIB)
  --cpus N           VM vCPUs (default $CPUS)
  --accel A          auto, kvm or tcg (default auto: KVM when /dev/kvm can boot a stock kernel, else
                     software emulation; a PVM host's /dev/kvm cannot)
  --source S         head (git archive of HEAD, the default) or worktree (HEAD plus uncommitted changes
                     and untracked files that git does not ignore)
  --keep             boot the previous run's disk again instead of a fresh one (npm install, the Go
                     build and the base template are then cached inside it); default: a fresh disk
  --rebuild-image    rebuild the cached VM image even if its recipe did not change
  --image-only       build (or check) the cached VM image and stop
  --timeout D        give up on the VM after D (timeout(1) syntax, default $TIMEOUT)
  --mirror URL       Debian mirror for the image (default $MIRROR)
  -h, --help         this text

The VM uses QEMU user-mode networking (no privileges, outbound only: the set-up needs the npm registry
and the Debian mirror). The guest trusts this host's local CA certificates (/usr/local/share/ca-certificates)
and builds native npm modules against the copied Node.js headers (npm nodedir=/usr), so it needs no more
network than the host has. QEMU runs under nice -n 19. Node.js >= 20 is a prerequisite of the README and
not in Debian 12: the host's Node.js (node, its headers, npm and corepack as installed) is copied in.
Results: the serial console is shown as it runs and kept in CACHE/runs/<time>/console.log, with the
guest's set-up log, daemon log and step timings beside it.
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --cache) CACHE=$2; shift 2 ;;
    --memory) MEMORY_MIB=$2; shift 2 ;;
    --cpus) CPUS=$2; shift 2 ;;
    --accel) ACCEL=$2; shift 2 ;;
    --source) SOURCE=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --rebuild-image) REBUILD=1; shift ;;
    --image-only) IMAGE_ONLY=1; shift ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --mirror) MIRROR=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$ACCEL" in auto|kvm|tcg) ;; *) echo "--accel must be auto, kvm or tcg" >&2; exit 2 ;; esac
case "$SOURCE" in head|worktree) ;; *) echo "--source must be head or worktree" >&2; exit 2 ;; esac

step() { printf '\n\033[1m==> [vm-smoke %s] %s\033[0m\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '\033[31mvm-smoke: %s\033[0m\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap builds the image as root): re-run with sudo"

step "host packages"
need=()
for pair in qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils mmdebstrap:mmdebstrap mkfs.ext4:e2fsprogs debugfs:e2fsprogs git:git; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Node.js >= 20 (a README prerequisite, not in Debian 12): the host's installation is copied into the image,
# as it is now (npm may have been upgraded past what the nodejs package shipped).
NODE_PATHS=(usr/bin/node usr/bin/npm usr/bin/npx usr/bin/corepack usr/include/node usr/lib/node_modules/npm usr/lib/node_modules/corepack)
for p in "${NODE_PATHS[@]}"; do [ -e "/$p" ] || die "the image takes Node.js from this host, but /$p is missing (install Node.js >= 20)"; done
echo "present: qemu $(qemu-system-x86_64 --version | head -1 | awk '{print $4}'), mmdebstrap, node $(node --version)" >&2

# One run at a time: runs share the image and the disk.
mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock -n 9 || die "another vm-smoke run holds $CACHE/lock"

# --- the cached image ---------------------------------------------------------------------------------
# Everything that shapes the image is hashed into its stamp: change the recipe and it is rebuilt.
IMAGE=$CACHE/image
GUEST_DIR=$REPO/scripts/vm-smoke
recipe_hash() {
  { declare -f build_image; cat "$GUEST_DIR/image-hooks.sh"; echo "$MIRROR"; node --version; npm --version; } | sha256sum | cut -c1-16
}

build_image() {
  local root=$IMAGE.tmp/root
  rm -rf "$IMAGE.tmp"; mkdir -p "$root"
  local t0=$SECONDS
  # A plain Debian 12 host: systemd, a stock kernel, networking; set-up installs the rest itself.
  mmdebstrap --variant=minbase --mode=root \
    --include=systemd,systemd-sysv,udev,dbus,linux-image-amd64,initramfs-tools,kmod,iproute2,ca-certificates,procps,e2fsprogs,util-linux,less,python3 \
    --customize-hook="bash $GUEST_DIR/image-hooks.sh \"\$1\"" \
    bookworm "$root" "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" "deb http://security.debian.org/debian-security bookworm-security main"
  tar -C / -cf - "${NODE_PATHS[@]}" | tar -C "$root" -xf -
  cp "$root"/boot/vmlinuz-* "$IMAGE.tmp/vmlinuz"
  cp "$root"/boot/initrd.img-* "$IMAGE.tmp/initrd.img"
  # A sparse 40 GiB ext4 root: set-up, templates and sandbox disks live there; each run writes an overlay.
  mkfs.ext4 -q -F -L stasis-vm -d "$root" "$IMAGE.tmp/root.img" 40G
  rm -rf "$root"
  echo "image built in $((SECONDS - t0)) s" >&2
}

want=$(recipe_hash)
if [ "$REBUILD" = 1 ] || [ ! -f "$IMAGE/stamp" ] || [ "$(cat "$IMAGE/stamp")" != "$want" ]; then
  step "building the VM image (Debian 12 + stock kernel, mmdebstrap) into $IMAGE"
  mkdir -p "$CACHE"
  build_image
  echo "$want" > "$IMAGE.tmp/stamp"
  rm -rf "$IMAGE"; mv "$IMAGE.tmp" "$IMAGE"
else
  step "VM image up to date ($IMAGE, recipe $want)"
fi
[ "$IMAGE_ONLY" = 0 ] || exit 0

# --- this run -----------------------------------------------------------------------------------------
RUN=$CACHE/runs/$(date +%Y%m%d-%H%M%S)
mkdir -p "$RUN"
# Keep the five newest runs' logs.
find "$CACHE/runs" -mindepth 1 -maxdepth 1 -type d | sort | head -n -5 | xargs -r rm -rf
step "run folder $RUN"

step "copying the repository ($SOURCE)"
job=$RUN/job; mkdir -p "$job/out"
if [ "$SOURCE" = head ]; then
  git -C "$REPO" archive --format=tar -o "$job/repo.tar" HEAD
else
  # HEAD's tracked files as they are on disk, plus untracked files that git does not ignore.
  git -C "$REPO" ls-files -z --cached --others --exclude-standard | (cd "$REPO" && tar --null -cf "$job/repo.tar" --ignore-failed-read -T -)
fi
cp "$GUEST_DIR/guest-job.sh" "$job/run.sh"
# This host's local CA certificates (an egress proxy that re-signs TLS, say): the guest trusts them too.
mkdir -p "$job/ca"
find /usr/local/share/ca-certificates -maxdepth 1 -name '*.crt' -exec cp {} "$job/ca/" \; 2>/dev/null || true
echo "$(git -C "$REPO" rev-parse --short HEAD) ($SOURCE)" > "$job/revision"
# The job disk: the guest's boot service runs /run.sh from it and writes its results into /out.
mkfs.ext4 -q -F -L stasis-job -d "$job" "$RUN/job.img" 2G
rm -rf "$job"

DISK=$CACHE/disk.qcow2
# The disk is an overlay on the image: it is only valid on the image it was made from.
if [ "$KEEP" = 1 ] && [ -f "$DISK" ] && [ "$(cat "$DISK.stamp" 2>/dev/null)" = "$(cat "$IMAGE/stamp")" ]; then
  echo "re-using the previous run's disk $DISK (--keep)" >&2
else
  [ "$KEEP" = 0 ] || echo "--keep: no disk made from this image yet, starting from a fresh one" >&2
  rm -f "$DISK" "$DISK.stamp"
  qemu-img create -q -f qcow2 -F raw -b "$IMAGE/root.img" "$DISK"
  cp "$IMAGE/stamp" "$DISK.stamp"
fi

accel=tcg
if [ "$ACCEL" = kvm ]; then accel=kvm
elif [ "$ACCEL" = auto ] && [ -w /dev/kvm ]; then
  # A PVM host's /dev/kvm only runs PVM-enabled guest kernels, never Debian's stock one.
  if [ -d /sys/module/kvm_pvm ]; then echo "/dev/kvm is PVM (kvm_pvm): a stock kernel cannot boot on it, using TCG" >&2
  else accel=kvm; fi
fi
if [ "$accel" = kvm ]; then cpu=host; else cpu=max; fi

step "booting the VM ($accel, $CPUS vCPUs, $MEMORY_MIB MiB, nice 19; timeout $TIMEOUT)"
echo "serial console below; also in $RUN/console.log" >&2
t0=$SECONDS
nice -n 19 timeout "$TIMEOUT" qemu-system-x86_64 \
  -name stasis-vm-smoke -machine q35 -accel "$accel" -cpu "$cpu" -smp "$CPUS" -m "$MEMORY_MIB" \
  -kernel "$IMAGE/vmlinuz" -initrd "$IMAGE/initrd.img" \
  -append "root=/dev/vda rw console=ttyS0 systemd.unified_cgroup_hierarchy=1 quiet loglevel=3 panic=-1" \
  -drive "file=$DISK,if=virtio,format=qcow2,discard=unmap" \
  -drive "file=$RUN/job.img,if=virtio,format=raw" \
  -netdev user,id=net0 -device virtio-net-pci,netdev=net0,romfile= \
  -display none -no-reboot -serial stdio -monitor none < /dev/null > "$RUN/console.log" 2>&1 &
qemu_pid=$!
tail -n +1 -F --pid="$qemu_pid" "$RUN/console.log" >&2 2>/dev/null &
# The guest powers itself off after its job; should it not, QEMU is stopped two minutes after the job's
# last line (its results are synced to the job disk before that line).
done_at=""
while kill -0 "$qemu_pid" 2>/dev/null; do
  if [ -z "$done_at" ] && grep -q '^STASIS-VM-JOB-DONE' "$RUN/console.log"; then done_at=$SECONDS; fi
  if [ -n "$done_at" ] && [ $((SECONDS - done_at)) -gt 120 ]; then
    echo "vm-smoke: the guest did not power off within 120 s of its job's end: stopping QEMU" >&2
    kill "$qemu_pid"; break
  fi
  sleep 2
done
set +e
wait "$qemu_pid"
qemu_rc=$?
set -e
sleep 1
echo "VM ran for $((SECONDS - t0)) s (qemu exit $qemu_rc)" >&2

# A guest stopped before unmounting leaves the job disk's journal to replay.
e2fsck -fy "$RUN/job.img" >/dev/null 2>&1 || true
# The guest's results: read from the job disk without mounting it.
for f in result setup.log daemon.log timings smoke.log; do
  debugfs -R "dump /out/$f $RUN/$f" "$RUN/job.img" >/dev/null 2>&1 || true
done
step "summary ($RUN)"
[ -s "$RUN/timings" ] && cat "$RUN/timings" >&2
if [ "$qemu_rc" = 124 ]; then die "the VM did not finish within $TIMEOUT"; fi
[ -s "$RUN/result" ] || die "the guest wrote no result (see $RUN/console.log)"
rc=$(cat "$RUN/result")
if [ "$rc" = 0 ]; then printf '\033[32mvm-smoke: PASS\033[0m\n' >&2; else printf '\033[31mvm-smoke: FAIL (guest exit %s)\033[0m\n' "$rc" >&2; fi
exit "$rc"
