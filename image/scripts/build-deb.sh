#!/usr/bin/env bash
# The edgeq Debian package, for the image and for updating a gateway without reflashing it
# (docs/image.md, "Updating edgeq"): the wheels of one release, the systemd units of the
# repository, and the maintainer scripts of image/deb/ that build the release's venv on the
# gateway, check it and switch to it (or stay on the previous one). No root needed.
#
# usage: build-deb.sh WHEELS_DIR UNITS_DIR OUTPUT_DIR [VERSION]
#        VERSION defaults to the edgeq wheel's; the package is OUTPUT_DIR/edgeq_VERSION_ARCH.deb
# env:   SOURCE_DATE_EPOCH, DEB_ARCH (default arm64: the wheels are aarch64 ones)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

deb_dir=$(dirname "$here")/deb
wheels=$1 units=$2 out=$3 version=${4:-}
arch=${DEB_ARCH:-arm64}

wheel_version() {
  local wheel
  wheel=$(find "$wheels" -maxdepth 1 -name 'edgeq-*.whl' -printf '%f\n' | head -1)
  [ -n "$wheel" ] || die "no edgeq wheel in $wheels: run 'make -C image wheels'"
  echo "$wheel" | cut -d- -f2
}

stage_files() {
  local root=$1
  install -d "$root/DEBIAN" "$root/usr/share/edgeq/wheels" "$root/usr/lib/edgeq" "$root/usr/bin" \
    "$root/usr/lib/systemd/system" "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d" \
    "$root/usr/lib/udev/rules.d"
  install -m 0644 "$wheels"/*.whl "$root/usr/share/edgeq/wheels/"
  install -m 0755 "$deb_dir/edgeq-update" "$root/usr/lib/edgeq/edgeq-update"
  ln -s /opt/edgeq/venv/bin/edgeq "$root/usr/bin/edgeq"
  install -m 0644 "$units/edgeq.service" "$root/usr/lib/systemd/system/edgeq.service"
  install -m 0644 "$units/edgeq.sysusers" "$root/usr/lib/sysusers.d/edgeq.conf"
  install -m 0644 "$units/edgeq.tmpfiles" "$root/usr/lib/tmpfiles.d/edgeq.conf"
  install -m 0644 "$units"/*.rules "$root/usr/lib/udev/rules.d/"
}

write_control() {
  local root=$1 size
  size=$(du -sk --apparent-size "$root/usr" | cut -f1)
  sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
    "$deb_dir/control.in" > "$root/DEBIAN/control"
  sed -e "s/@VERSION@/$version/" "$deb_dir/postinst" > "$root/DEBIAN/postinst"
  install -m 0755 "$deb_dir/prerm" "$deb_dir/postrm" "$root/DEBIAN/"
  chmod 0755 "$root/DEBIAN/postinst"
}

main() {
  [ -n "$version" ] || version=$(wheel_version)
  local work
  work=$(mktemp -d)
  stage_files "$work/root"
  write_control "$work/root"
  mkdir -p "$out"
  dpkg-deb --root-owner-group -Zxz --build "$work/root" "$out/edgeq_${version}_${arch}.deb" >/dev/null
  rm -rf "$work"
  log "package: $out/edgeq_${version}_${arch}.deb"
}

main "$@"
