#!/usr/bin/env bash
# Stage 2 of the image: edgeq on top of the Debian base. Copies the base, then adds the image's
# system configuration (overlay/), the edgeq Debian package (build-deb.sh: the units of
# systemd/ and edgeq in its own venv, /opt/edgeq/venv, from wheels, no network), the users,
# first-boot provisioning, and the Raspberry Pi boot configuration. Takes a few minutes.
#
# usage: build-rootfs.sh BASE_DIR TARGET_DIR EDGEQ_DEB
# env:   SOURCE_DATE_EPOCH
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

image_dir=$(dirname "$here")
base=$1 final=$2 deb=$3
target=$final.tmp
: "${SOURCE_DATE_EPOCH:?set SOURCE_DATE_EPOCH (the Makefile does)}"
export SOURCE_DATE_EPOCH

VENV=/opt/edgeq/venv
ADMIN="admin"
ENABLE=(edgeq.service edgeq-firstboot.service edgeq-growroot.service edgeq-ssh-hostkeys.service
        ssh.service systemd-networkd.service systemd-resolved.service systemd-timesyncd.service)

copy_base() {
  remove_tree "$target"
  cp -a --reflink=auto "$base" "$target"
}

# Work in TARGET.tmp and rename at the end: a failed build never leaves a half-made TARGET.
finish() {
  remove_tree "$final"
  mv "$target" "$final"
}

install_overlay() {
  cp -a "$image_dir/overlay/." "$target/"
  chmod 0440 "$target/etc/sudoers.d/010-edgeq-admin"
  install -D -m 0755 "$image_dir/firstboot/edgeq_firstboot.py" \
    "$target/usr/lib/edgeq-image/edgeq_firstboot.py"
  install -m 0644 "$image_dir/firstboot/edgeq_tools.py" "$image_dir/firstboot/wifi_config.py" \
    "$target/usr/lib/edgeq-image/"
  install -D -m 0644 "$image_dir/../docs/image.md" "$target/usr/share/doc/edgeq-image/image.md"
}

# edgeq and gpio from the sysusers files; `admin` (in group edgeq: it reads admin.json, so
# `edgeq top` runs without sudo) logs in with a key only ('*': no password
# can ever match, unlike '!' which sshd may treat as a locked account).
create_users() {
  in_chroot "$target" systemd-sysusers
  grep -q "^gpio:" "$target/etc/group" || in_chroot "$target" groupadd --system gpio
  in_chroot "$target" useradd --create-home --shell /bin/bash --user-group \
    --groups sudo,adm,systemd-journal,gpio,edgeq "$ADMIN"
  in_chroot "$target" usermod --password '*' "$ADMIN"
  in_chroot "$target" usermod --password '*' root
}

# As edgeq.tmpfiles sets them at boot: configuration (it may hold secrets) readable by edgeq only.
secure_config() {
  in_chroot "$target" chown root:edgeq /etc/edgeq/edgeq.toml
  chmod 0640 "$target/etc/edgeq/edgeq.toml"
}

# The package's postinst (deb/edgeq-update) builds the venv from its wheels and refuses a
# release that does not compile: the wheel is built from the working tree, so a half-edited one
# is never shipped. Installed before the overlay: the image's edgeq.toml names the password file
# that first boot makes, so `check-config` could not pass yet. systemd does not run here, so
# nothing is restarted.
install_edgeq() {
  [ -f "$deb" ] || die "no package $deb: run 'make -C image deb'"
  cp "$deb" "$target/tmp/edgeq.deb"
  in_chroot "$target" env LG_WD=/tmp dpkg --install /tmp/edgeq.deb \
    || die "the edgeq package did not install (see above)"
  rm -f "$target/tmp/edgeq.deb"
}

enable_units() {
  in_chroot "$target" systemctl enable "${ENABLE[@]}"
  # It would wait for answers on the console at first boot: a headless gateway has no one there.
  in_chroot "$target" systemctl mask systemd-firstboot.service
}

# The Pi's cmdline.txt must name the root partition by label (the build host's root is not it),
# and the HDMI console comes last so boot messages and provisioning errors appear on a screen.
configure_boot() {
  cat >> "$target/etc/default/raspi-firmware" <<'EOF'

# edgeq image (image/scripts/build-rootfs.sh):
ROOTPART="LABEL=RASPIROOT"
CONSOLES="ttyS1,115200 tty0"
EOF
  in_chroot "$target" env DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware
}

# Per-gateway identity is made at first boot, never shipped in the image.
make_anonymous() {
  rm -f "$target"/etc/ssh/ssh_host_*
  : > "$target/etc/machine-id"
  rm -f "$target/var/lib/dbus/machine-id" "$target/var/lib/systemd/random-seed"
  printf 'edgeq\n' > "$target/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tedgeq\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
    > "$target/etc/hosts"
  ln -sf ../run/systemd/resolve/stub-resolv.conf "$target/etc/resolv.conf"
  find "$target/var/log" -type f -delete
  rm -rf "$target/var/cache/apt/"*.bin "$target/tmp/"* "$target/root/.cache"
  rm -f "$target"/boot/*.dpkg-bak
}

# No file newer than SOURCE_DATE_EPOCH: the same inputs give the same file system.
clamp_mtimes() {
  find "$target" -xdev -newermt "@$SOURCE_DATE_EPOCH" -print0 \
    | xargs -0r touch --no-dereference --date="@$SOURCE_DATE_EPOCH"
}

write_release() {
  local edgeq kernel
  edgeq=$(grep -i '^edgeq==' "$target/opt/edgeq/manifest.txt" | cut -d= -f3)
  kernel=$(find "$target/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sort -V | tail -1)
  kernel=${kernel#vmlinuz-}
  cat > "$target/etc/edgeq-image-release" <<EOF
EDGEQ_VERSION=$edgeq
DEBIAN_VERSION=$(cat "$target/etc/debian_version")
KERNEL=$kernel
VENV=$VENV
SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH
EOF
}

main() {
  require_root
  require_binfmt_aarch64
  [ -d "$base" ] || die "no base stage at $base: run 'make -C image base'"
  log "stage 2: edgeq into $final"
  copy_base
  install_edgeq
  install_overlay
  create_users
  secure_config
  enable_units
  configure_boot
  make_anonymous
  write_release
  clamp_mtimes
  finish
  log "stage 2 done: $(du -sh --one-file-system "$final" | cut -f1)"
}

main "$@"
