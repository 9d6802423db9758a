#!/usr/bin/env bash
# mmdebstrap --essential-hook of stage 1: runs after the Essential packages, before the rest.
# usage: base-essential-hook.sh ROOT
#
# Every kernel, firmware and hook package asks for the initramfs to be rebuilt as it is
# installed; under emulation one build takes 15-20 minutes. Divert update-initramfs to a stub
# now, and build once, with everything installed, in base-customize-hook.sh.
set -euo pipefail
root=$1
chroot "$root" dpkg-divert --quiet --local --rename \
  --divert /usr/sbin/update-initramfs.edgeq-deferred --add /usr/sbin/update-initramfs
printf '#!/bin/sh\necho "update-initramfs: deferred to the end of the edgeq image build"\n' \
  > "$root/usr/sbin/update-initramfs"
chmod 0755 "$root/usr/sbin/update-initramfs"
