#!/bin/sh
# Builds the guest kernel by hand with the same recipe as `builder::kernel::run_build`
# (recipe version 1). Usage:
#   scripts/build-kernel.sh SOURCE_DEB CONFIG_DIR OUT_BZIMAGE [EPOCH] [JOBS]
# EPOCH defaults to 1794660961 (the source package's own changelog date, 2026-11-14 12:56:01 UTC).
# The work tree is a fresh temporary directory; its path does not reach the bzImage.
set -eu
deb=$(realpath "$1") cfgdir=$(realpath "$2") out=$3
epoch=${4:-1794660961} jobs=${5:-$(nproc)}
umask 022
work=$(mktemp -d "${TMPDIR:-/tmp}/kernel-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
dpkg-deb --fsys-tarfile "$deb" | tar -xf - -C "$work" ./usr/src/linux-source-6.12.tar.xz
tar -xJf "$work/usr/src/linux-source-6.12.tar.xz" -C "$work"
src=$work/linux-source-6.12
run() {
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C TZ=UTC SOURCE_DATE_EPOCH="$epoch" \
		KBUILD_BUILD_TIMESTAMP="$(LC_ALL=C TZ=UTC date -u -d "@$epoch")" \
		KBUILD_BUILD_USER=enclave KBUILD_BUILD_HOST=enclave-builder KBUILD_BUILD_VERSION=1 \
		make -C "$src" ARCH=x86 "KCFLAGS=-ffile-prefix-map=$src=/usr/src/linux" "$@"
}
cp "$cfgdir/config-6.12" "$src/.config"
run olddefconfig
cmp "$cfgdir/config-6.12" "$src/.config" || { diff "$cfgdir/config-6.12" "$src/.config" >&2; exit 1; }
run -j"$jobs" bzImage
cp "$src/arch/x86/boot/bzImage" "$out.tmp" && mv "$out.tmp" "$out"
sha256sum "$out"
