#!/usr/bin/env bash
# Stage 1 of the image: the Debian arm64 system (kernel, Pi firmware, initramfs, networking,
# ssh, python3) made by mmdebstrap from Debian's archive alone. Nothing of edgeq yet, so this
# slow stage (10-25 min under emulation) is rebuilt only when the package list changes.
#
# usage: build-base.sh TARGET_DIR
# env:   SUITE MIRROR SECURITY_MIRROR INITRAMFS_MODULES SOURCE_DATE_EPOCH
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

image_dir=$(dirname "$here")
target=$1
building=$target.tmp
: "${SUITE:=bookworm}" "${MIRROR:=http://deb.debian.org/debian}"
: "${SECURITY_MIRROR:=http://deb.debian.org/debian-security}" "${INITRAMFS_MODULES:=most}"
: "${SOURCE_DATE_EPOCH:?set SOURCE_DATE_EPOCH (the Makefile does)}"

package_list() {
  sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$image_dir/packages.txt" | tr -s ' \n' ',' \
    | sed 's/,$//'
}

# A hook command line for mmdebstrap: the script and its arguments, then the root ("$1").
hook() {
  printf '%q ' "$@"
  # shellcheck disable=SC2016 # a literal $1: mmdebstrap passes the root there
  printf '"$1"'
}

run_mmdebstrap() {
  local components="main non-free-firmware"
  # A private mount namespace: whatever mmdebstrap or the hooks mount is gone when it exits.
  unshare --mount --propagation private -- mmdebstrap \
    --mode=root --arch=arm64 --variant=apt --format=directory \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='force-confold' \
    --include="$(package_list)" \
    --setup-hook="$(hook "$here/base-setup-hook.sh" "$image_dir/base" "$INITRAMFS_MODULES")" \
    --essential-hook="$(hook "$here/base-essential-hook.sh")" \
    --customize-hook="$(hook "$here/base-customize-hook.sh")" \
    "$SUITE" "$building" \
    "deb $MIRROR $SUITE $components" \
    "deb $MIRROR $SUITE-updates $components" \
    "deb $SECURITY_MIRROR $SUITE-security $components"
}

main() {
  require_root
  require_binfmt_aarch64
  remove_tree "$building"
  log "stage 1: Debian $SUITE arm64 into $target (MODULES=$INITRAMFS_MODULES)"
  SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH run_mmdebstrap
  remove_tree "$target"
  mv "$building" "$target"
  log "stage 1 done: $(du -sh --one-file-system "$target" | cut -f1)"
}

main "$@"
