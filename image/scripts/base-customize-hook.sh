#!/usr/bin/env bash
# mmdebstrap --customize-hook of stage 1: runs after all packages are installed.
# usage: base-customize-hook.sh ROOT
set -euo pipefail
root=$1

# Undo base-essential-hook.sh, then the one initramfs build (raspi-firmware's post-update
# hook copies it to /boot/firmware).
rm -f "$root/usr/sbin/update-initramfs"
chroot "$root" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs
chroot "$root" update-initramfs -c -k all

umount "$root/boot/firmware"
