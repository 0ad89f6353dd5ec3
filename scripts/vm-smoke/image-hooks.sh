#!/usr/bin/env bash
# mmdebstrap customize hook for the vm-smoke image ($1: the new root filesystem, seen from the host).
# Makes a plain Debian 12 boot on QEMU with DHCP networking and run the job disk's /run.sh once, then
# power off. The job itself (set-up + smoke test) comes from the repository on each run.
set -euo pipefail
root=$1

echo stasis-vm > "$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 stasis-vm\n' > "$root/etc/hosts"
echo 'LABEL=stasis-vm / ext4 defaults,discard 0 1' > "$root/etc/fstab"

# QEMU user-mode networking: DHCP from 10.0.2.2, DNS forwarded at 10.0.2.3.
mkdir -p "$root/etc/systemd/network"
printf '[Match]\nName=en*\n\n[Network]\nDHCP=ipv4\n' > "$root/etc/systemd/network/10-vm.network"
rm -f "$root/etc/resolv.conf"
echo 'nameserver 10.0.2.3' > "$root/etc/resolv.conf"

cat > "$root/usr/local/sbin/stasis-vm-job" <<'JOB'
#!/bin/bash
# Runs the job disk's /run.sh with its folder as argument; the service powers the VM off afterwards.
mkdir -p /job
mount LABEL=stasis-job /job || { echo "stasis-vm-job: no job disk"; exit 1; }
bash /job/run.sh /job
sync
umount /job
JOB
chmod 755 "$root/usr/local/sbin/stasis-vm-job"

cat > "$root/etc/systemd/system/stasis-vm-job.service" <<'UNIT'
[Unit]
Description=Stasis vm-smoke job (set-up + smoke test)
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/stasis-vm-job
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
TimeoutStartSec=infinity
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Install]
WantedBy=multi-user.target
UNIT

chroot "$root" systemctl enable systemd-networkd.service systemd-networkd-wait-online.service stasis-vm-job.service
# The console belongs to the job's output: no login prompt on it.
chroot "$root" systemctl mask serial-getty@ttyS0.service getty@tty1.service
