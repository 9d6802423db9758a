#!/usr/bin/env bash
# Stage 3 of the image: the flashable SD card image from the root file system, by genimage
# (no loop devices, no mounts, no device mapper: none of them work on every build machine).
#
# usage: build-sdimage.sh ROOTFS_DIR OUTPUT_DIR IMAGE_NAME
# env:   SOURCE_DATE_EPOCH BOOT_SIZE (default 256M) ROOT_HEADROOM_MB (default 384)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

image_dir=$(dirname "$here")
rootfs=$1 out=$2 name=$3
: "${SOURCE_DATE_EPOCH:?set SOURCE_DATE_EPOCH (the Makefile does)}"
: "${BOOT_SIZE:=256M}" "${ROOT_HEADROOM_MB:=384}"
# Same UUID in every build, so the same inputs give the same file system.
ROOT_UUID=3c1d2e8f-ed9e-4e0a-9b1f-6564676571ff

# The content plus a quarter and some headroom for the first boot; the root partition grows
# to fill the card at first boot (edgeq-growroot.service).
root_size_mb() {
  local used
  used=$(du -s --block-size=1M --apparent-size --one-file-system \
         --exclude=./boot/firmware "$rootfs" | cut -f1)
  echo $(( used + used / 4 + ROOT_HEADROOM_MB ))
}

write_config() {
  sed -e "s/@BOOT_SIZE@/$BOOT_SIZE/" -e "s/@ROOT_SIZE@/$(root_size_mb)M/" \
      -e "s/@ROOT_UUID@/$ROOT_UUID/g" -e "s/@IMAGE_NAME@/$name/" \
      -e "s/@FS_TIMESTAMP@/$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d%H%M%S)/" \
      "$image_dir/genimage.cfg.in" > "$1"
}

# mke2fs -d copies each file's inode change time (ctime), which no tool can set on the source
# files, and its access time, which the build's own reads move. Set both to SOURCE_DATE_EPOCH
# inside the finished image (debugfs at the root partition's offset: no mount, no loop device).
clamp_inode_times() {
  local img=$1 work=$2 offset
  offset=$(( $(partx -g -o START -n 2 "$img") * 512 ))
  (cd "$rootfs" && find . -xdev ! -path './boot/firmware/*' -printf '/%P\n') \
    | awk -v t="@$SOURCE_DATE_EPOCH" '{
        gsub(/"/, "\\\"")
        printf "set_inode_field \"%s\" ctime %s\nset_inode_field \"%s\" atime %s\n", $0, t, $0, t
      }' > "$work/times.cmds"
  E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH debugfs -w -f "$work/times.cmds" "$img?offset=$offset" \
    > "$work/times.log" 2>&1
  e2fsck -fn "$img?offset=$offset" > /dev/null \
    || die "the root file system does not check after clamp_inode_times"
}

main() {
  require_root
  [ -f "$rootfs/boot/firmware/config.txt" ] || die "$rootfs has no Pi boot files: build stage 2"
  local work
  work=$(mktemp -d "$out/genimage.XXXXXX")
  write_config "$work/genimage.cfg"
  rm -f "$out/$name.img"
  log "stage 3: $out/$name.img"
  E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH genimage --config "$work/genimage.cfg" \
    --rootpath "$rootfs" --tmppath "$work/tmp" --inputpath "$work" --outputpath "$out"
  clamp_inode_times "$out/$name.img" "$work"
  remove_tree "$work"
  log "stage 3 done: $(du -h --apparent-size "$out/$name.img" | cut -f1) $out/$name.img"
}

main "$@"
