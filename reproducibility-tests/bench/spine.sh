#!/usr/bin/env bash
# End-to-end benchmark of the build spine against the peer tools on the same input, in the same
# run: `enclave-builder build` (tar layer -> in-memory tree -> EROFS -> dm-verity) versus
# `tar -x` + `mkfs.erofs` + `veritysetup format` (erofs-utils, cryptsetup). Prints times and the
# ratio ours/peer (lower is better). Usage: bench/spine.sh [SOURCE_DIR] (default /usr/share).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
src=${1:-/usr/share}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --quiet --release -p enclave-builder --manifest-path "$here/Cargo.toml"
bin="$here/target/release/enclave-builder"

tar --numeric-owner --sort=name -C "$src" -cf "$work/layer.tar" .
sha=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
printf 'k' > "$work/vmlinuz"; printf 'f' > "$work/fw.fd"
cat > "$work/m.toml" <<TOML
schema = 1
[image]
name = "bench"
version = "1"
source_date_epoch = 0
[[rootfs.layers]]
tar = "layer.tar"
sha256 = "$sha"
[boot]
kernel = { path = "vmlinuz", sha256 = "$(sha256sum "$work/vmlinuz" | cut -d' ' -f1)" }
firmware = { path = "fw.fd", sha256 = "$(sha256sum "$work/fw.fd" | cut -d' ' -f1)" }
TOML
cat "$work/layer.tar" > /dev/null   # warm the page cache for both

t0=$(date +%s.%N)
"$bin" build "$work/m.toml" --out "$work/ours" --quiet >/dev/null
t1=$(date +%s.%N)
mkdir "$work/peer"
tar -xf "$work/layer.tar" -C "$work/peer" --numeric-owner --xattrs --xattrs-include='*'
mkfs.erofs --quiet -T0 "$work/peer.img" "$work/peer"
veritysetup format "$work/peer.img" "$work/peer.hash" >/dev/null
t2=$(date +%s.%N)

ours=$(echo "$t1 - $t0" | bc); peer=$(echo "$t2 - $t1" | bc)
echo "input: $(du -sh "$work/layer.tar" | cut -f1) tar of $src"
echo "ours (enclave-builder build):                 ${ours}s, image $(stat -c %s "$work/ours/rootfs.img") bytes"
echo "peer (tar -x + mkfs.erofs + veritysetup format): ${peer}s, image $(( $(stat -c %s "$work/peer.img") + $(stat -c %s "$work/peer.hash") )) bytes"
echo "ratio ours/peer: $(echo "scale=2; $ours / $peer" | bc)"
