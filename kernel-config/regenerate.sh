#!/bin/sh
# Regenerates config-6.12 from tinyconfig + enclave.config and checks the fragment resolved.
# Usage: kernel-config/regenerate.sh LINUX_SOURCE_TREE   (an unpacked linux-source-6.12)
# Runs make in the same clean environment as the build (builder::kernel::recipe): the config
# records the compiler (CONFIG_CC_VERSION_TEXT) and any rustc found on PATH, so a config
# generated with another PATH would not survive the build's `make olddefconfig` check.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$1" && pwd)
m() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C TZ=UTC make -C "$src" ARCH=x86 "$@"; }
m tinyconfig
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C sh -c \
	'cd "$1" && ARCH=x86 ./scripts/kconfig/merge_config.sh -m .config "$2"' sh "$src" "$here/enclave.config"
m olddefconfig
"$here/check-fragment.sh" "$here/enclave.config" "$src/.config"
cp "$src/.config" "$here/config-6.12"
echo "wrote $here/config-6.12"
