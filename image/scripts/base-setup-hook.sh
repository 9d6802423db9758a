#!/usr/bin/env bash
# mmdebstrap --setup-hook of stage 1: runs before any package is installed.
# usage: base-setup-hook.sh BASE_FILES_DIR INITRAMFS_MODULES ROOT
set -euo pipefail
files=$1 modules=$2 root=$3

# fstab and the initramfs hook must exist before the kernel's initramfs is built.
cp -a "$files/." "$root/"
# git keeps no empty folders: make conf.d here, not in base/.
# FSTYPE: the fsck hook cannot probe the root's type at build time (LABEL=RASPIROOT names no
# device here), and without it fsck.ext4 is left out of the initramfs.
mkdir -p "$root/etc/initramfs-tools/conf.d"
printf '# written by image/scripts/base-setup-hook.sh\nMODULES=%s\nFSTYPE=ext4\n' "$modules" \
  > "$root/etc/initramfs-tools/conf.d/edgeq.conf"

# raspi-firmware's kernel hook copies the kernel, initrd and device trees into /boot/firmware
# and insists on that being a mount point (on a Pi, the FAT partition). Here it is a plain
# directory that genimage turns into that partition, so bind it onto itself.
mkdir -p "$root/boot/firmware"
mount --bind "$root/boot/firmware" "$root/boot/firmware"
