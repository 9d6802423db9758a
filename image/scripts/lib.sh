# shellcheck shell=bash
# Shared helpers of the image build scripts (sourced, not run).
# Every script that sources this runs with `set -euo pipefail`.

log() { printf '\033[1m[image]\033[0m %s\n' "$*" >&2; }

die() { printf '[image] ERROR: %s\n' "$*" >&2; exit 1; }

require_root() {
  [ "$(id -u)" = 0 ] || die "this step needs root (loop-free, but chroot, mknod and chown need it)"
}

# The aarch64 emulator must be registered with binfmt_misc for chroot to run arm64 programs.
require_binfmt_aarch64() {
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] \
    || die "qemu-aarch64 is not registered with binfmt_misc: run 'make -C image prereqs'"
}

# Paths that are still mounted under DIR (deepest first), for cleanup before deleting it.
mounts_under() {
  local dir
  dir=$(readlink -f "$1")
  findmnt -rn -o TARGET | grep -E "^${dir}(/|$)" | sort -r || true
}

# Delete a build directory, refusing while anything is mounted inside it: an rm -rf through a
# leftover bind mount of /dev or /proc would delete the host's files.
remove_tree() {
  local dir=$1 m
  [ -e "$dir" ] || return 0
  for m in $(mounts_under "$dir"); do umount -l "$m" || true; done
  [ -z "$(mounts_under "$dir")" ] || die "still mounted under $dir: $(mounts_under "$dir")"
  rm -rf --one-file-system "$dir"
}

# Run a command inside the arm64 root filesystem ROOT with /proc, /sys and /dev mounted in a
# private mount namespace: the mounts vanish with the command, even when it fails.
in_chroot() {
  local root=$1; shift
  # shellcheck disable=SC2016 # the inner script expands its own arguments
  unshare --mount --propagation private -- sh -euc '
    root=$1; shift
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    mount --rbind /dev "$root/dev"
    exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
      LC_ALL=C.UTF-8 SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-}" "$@"
  ' in_chroot "$root" "$@"
}
