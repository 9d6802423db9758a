#!/usr/bin/env bash
# The Python side of the image: the edgeq wheel built from this repository, and every
# dependency as an aarch64 (manylinux) CPython 3.11 wheel at the version pinned in wheels.lock.
# Installed later inside the arm64 root with `pip install --no-index`: no network in there.
#
# usage: fetch-wheels.sh REPO WHEELS_DIR LOCK_FILE HOST_PYTHON
#        fetch-wheels.sh --lock REPO LOCK_FILE HOST_PYTHON   (re-resolve and rewrite the lock)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

# Debian bookworm has glibc 2.36: any manylinux tag up to 2_36 runs there.
PLATFORMS=(manylinux2014_aarch64 manylinux_2_17_aarch64 manylinux_2_26_aarch64
           manylinux_2_28_aarch64 manylinux_2_31_aarch64 manylinux_2_34_aarch64
           manylinux_2_35_aarch64 manylinux_2_36_aarch64)
# lgpio: gpiozero 2's default pin driver, over /dev/gpiochip* (Debian bookworm has no package).
EXTRA=(lgpio)

pip_download() {
  local python=$1; shift
  "$python" -m pip download --quiet --only-binary=:all: --python-version 3.11 \
    --implementation cp "${PLATFORMS[@]/#/--platform=}" "$@"
}

build_edgeq_wheel() {
  local repo=$1 dest=$2 python=$3
  rm -f "$dest"/edgeq-*.whl
  "$python" -m pip wheel --quiet --no-deps --wheel-dir "$dest" "$repo"
}

# name==version of everything edgeq needs on arm64, resolved by pip from PyPI.
write_lock() {
  local repo=$1 lock=$2 python=$3 tmp
  tmp=$(mktemp -d)
  build_edgeq_wheel "$repo" "$tmp/edgeq" "$python"
  pip_download "$python" --dest "$tmp/deps" --find-links "$tmp/edgeq" "edgeq[tui,appliance]" paho-mqtt "${EXTRA[@]}"
  {
    echo "# aarch64 wheels of the image (image/scripts/fetch-wheels.sh --lock rewrites this)."
    find "$tmp/deps" -name '*.whl' ! -name 'edgeq-*' -printf '%f\n' \
      | awk -F- '{ print tolower($1) "==" $2 }' | sort
  } > "$lock"
  rm -rf "$tmp"
  log "wrote $lock"
}

fetch() {
  local repo=$1 dest=$2 lock=$3 python=$4
  mkdir -p "$dest"
  rm -f "$dest"/*.whl
  build_edgeq_wheel "$repo" "$dest" "$python"
  # The lock constrains versions; a dependency added to pyproject.toml since the lock was
  # written is still resolved (and reported), so the image builds while the lock catches up.
  pip_download "$python" --dest "$dest" --find-links "$dest" --constraint "$lock" \
    "edgeq[tui,appliance]" paho-mqtt "${EXTRA[@]}"
  report_unlocked "$dest" "$lock"
  log "wheels: $(find "$dest" -name '*.whl' | wc -l) in $dest"
}

report_unlocked() {
  local dest=$1 lock=$2 name
  for name in $(find "$dest" -name '*.whl' ! -name 'edgeq-*' -printf '%f\n' | cut -d- -f1); do
    grep -qi "^${name}==" "$lock" \
      || log "warning: $name is not pinned in $lock; run 'make -C image lock'"
  done
}

if [ "${1:-}" = --lock ]; then
  shift
  write_lock "$@"
else
  fetch "$@"
fi
