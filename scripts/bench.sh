#!/usr/bin/env bash
# Image-scale benchmarks (issue 13), each against its peer on the same input in the same run,
# interleaved round by round, printing the ratio (lower is better for ours/x). Not part of the
# tests. Usage: bash scripts/bench.sh
#   BENCH_SCALE=1     input scale: 1 = an OCI layout of ~1 GiB, a 4 GiB weights file, verity
#                     over 1 and 4 GiB; 0.05 for a quick smoke test
#   BENCH_ROUNDS=3    rounds; each prints its times, the summary gives the median ratio
#   BENCH_ONLY=...    a subset of: oci disk verity (default all three)
#   BENCH_BASE=PATH   also time this enclave-builder binary (e.g. a copy of an older build) in
#                     the same rounds, and print ours/base: before/after in one run
#   BENCH_FRESH=1     before each timed command, write back and drop the page cache
#                     (needs root), then read that command's inputs back into it: every
#                     command starts from the same memory state. On a VM that returns freed
#                     memory to its host, a command that follows another's gigabytes otherwise
#                     pays for them (the peer pipeline took 17-34 s for the same work in one run)
#   BENCH_BIN=PATH    an enclave-builder binary to time instead of building this checkout's
#                     (e.g. a copy of an older build, for before/after figures); the
#                     bench-verity binary beside it is used too
# Inputs are generated deterministically (scripts/bench-inputs.py) into target/bench/inputs-SCALE
# and kept for the next run (delete that directory to free the space); the outputs go to a
# temporary directory under target/bench that is removed at the end.
# Needs: umoci, erofs-utils (mkfs.erofs), cryptsetup-bin (veritysetup), openssl, gzip, tar,
# python3, /usr/bin/time (package time).
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${BENCH_SCALE:-1}
fresh=${BENCH_FRESH:-}
if [[ -n $fresh && ! -w /proc/sys/vm/drop_caches ]]; then
  echo "bench: BENCH_FRESH=1 drops the page cache, which needs root; run as root or without it" >&2
  exit 2
fi
rounds=${BENCH_ROUNDS:-3}
only=${BENCH_ONLY:-oci disk verity}
export CARGO_CACHE_AUTO_CLEAN_FREQUENCY=never
if [[ -n ${BENCH_BIN:-} ]]; then
  bin=$BENCH_BIN
  vbin=$(dirname "$BENCH_BIN")/bench-verity
else
  cargo build -q --release --locked -p enclave-builder -p reproducibility-tests \
    --bin enclave-builder --bin bench-verity
  bin=$PWD/target/release/enclave-builder
  vbin=$PWD/target/release/bench-verity
fi
mkdir -p target/bench
inputs=$PWD/target/bench/inputs-$scale
# The outputs kept at once (our images, the peer's unpacked tree and images, the floors'
# copies; BENCH_BASE's images too) take about 17 GiB at scale 1 (22 with BENCH_BASE), and the
# inputs 6 GiB the first time: refuse now rather than fail with a full disk half-way.
gib_at_1=17
[[ -z ${BENCH_BASE:-} ]] || gib_at_1=22
[[ -f $inputs/done ]] || gib_at_1=$((gib_at_1 + 6))
need_gib=$(python3 -c 'import math, sys; print(math.ceil(float(sys.argv[1]) * int(sys.argv[2])))' "$scale" "$gib_at_1")
avail_gib=$(($(df -Pk target/bench | awk 'NR == 2 {print $4}') / 1048576))
if ((avail_gib < need_gib)); then
  echo "bench: needs about $need_gib GiB free under target/bench, $avail_gib GiB are;" \
    "free some, or run at a smaller BENCH_SCALE" >&2
  exit 2
fi
echo "generating inputs in $inputs (once per scale)" >&2
python3 scripts/bench-inputs.py "$inputs" "$scale"
# shellcheck source=/dev/null
. "$inputs/sizes"
work=$(mktemp -d "$PWD/target/bench/run.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Tiny boot inputs: the benchmarks time the images, not the boot stage.
printf 'k' >"$work/vmlinuz"
printf 'f' >"$work/fw.fd"
sha() { openssl dgst -sha256 -r "$1" | cut -d' ' -f1; }
head_toml() {
  cat <<TOML
schema = 1
[image]
name = "bench"
version = "1"
source_date_epoch = 0
[boot]
kernel = { path = "vmlinuz", sha256 = "$(sha "$work/vmlinuz")" }
firmware = { path = "fw.fd", sha256 = "$(sha "$work/fw.fd")" }
TOML
}
{
  head_toml
  printf '[[rootfs.layers]]\noci = "%s"\nmanifest = "%s"\n' "$inputs/oci" "$oci_manifest"
} >"$work/oci.toml"
tar --mtime=@0 --owner=0 --group=0 -C "$work" -cf "$work/tiny.tar" vmlinuz
{
  head_toml
  printf '[[rootfs.layers]]\ntar = "tiny.tar"\nsha256 = "%s"\n' "$(sha "$work/tiny.tar")"
  printf '[[disks]]\nname = "weights"\nmount = "/models/w"\n'
  printf '[[disks.files]]\npath = "/model.safetensors"\nsource = "%s"\n' "$inputs/weights.bin"
  printf 'sha256 = "%s"\nmode = 0o644\nuid = 0\ngid = 0\n' "$(sha "$inputs/weights.bin")"
} >"$work/disk.toml"
mkdir "$work/weights-dir"
ln "$inputs/weights.bin" "$work/weights-dir/model.safetensors"

declare -A times
now() { date +%s.%N; }
# The inputs each timed command reads, for BENCH_FRESH (set before each `run`).
warm=()
# run NAME COMMAND...: times COMMAND (quiet), appends the seconds to times[NAME].
run() {
  local name=$1
  shift
  local t0 t1
  # Each command starts with no dirty pages left by the one before (whose writeback would
  # otherwise be charged to it); the sync is not timed.
  sync
  if [[ -n $fresh ]]; then
    echo 3 >/proc/sys/vm/drop_caches
    cat "${warm[@]}" >/dev/null
    sleep 1
  fi
  t0=$(now)
  "$@" >"$work/$name.log" 2>&1 || {
    echo "$name failed:" >&2
    tail -20 "$work/$name.log" >&2
    exit 1
  }
  t1=$(now)
  times[$name]="${times[$name]:-} $(echo "$t1 - $t0" | bc)"
  printf '  %-12s %8.2f s\n' "$name" "$(echo "$t1 - $t0" | bc)"
}
rss_kib=
# rss NAME: prints the peak RSS /usr/bin/time -v recorded in $work/NAME.time.
rss() {
  rss_kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/$1.time")
  printf '  %-12s peak RSS %d MiB\n' "$1" "$((rss_kib / 1024))"
}

ours_oci() { rm -rf "$work/out-oci"; "$bin" build "$work/oci.toml" --out "$work/out-oci" --quiet; }
peer_oci() {
  rm -rf "$work/bundle" "$work/peer.img" "$work/peer.hash"
  umoci unpack --rootless --image "$inputs/oci:bench" "$work/bundle"
  mkfs.erofs --quiet -T0 "$work/peer.img" "$work/bundle/rootfs"
  veritysetup format "$work/peer.img" "$work/peer.hash"
}
floor_oci() {
  # shellcheck disable=SC2086
  cat $layer_blobs >"$work/floor.cat"
  openssl dgst -sha256 "$work/out-oci/rootfs.img"
}
ours_disk() {
  rm -rf "$work/out-disk"
  /usr/bin/time -v -o "$work/ours-disk.time" "$bin" build "$work/disk.toml" --out "$work/out-disk" --quiet
}
base_oci() { rm -rf "$work/base-oci"; "$BENCH_BASE" build "$work/oci.toml" --out "$work/base-oci" --quiet; }
base_disk() { rm -rf "$work/base-disk"; "$BENCH_BASE" build "$work/disk.toml" --out "$work/base-disk" --quiet; }
base=${BENCH_BASE:-}
peer_disk() {
  rm -f "$work/peer-disk.img" "$work/peer-disk.hash"
  mkfs.erofs --quiet -T0 "$work/peer-disk.img" "$work/weights-dir"
  veritysetup format "$work/peer-disk.img" "$work/peer-disk.hash"
}
# The disk's floor: the weights written once (a page-cache copy that, at 4 GiB, outruns the
# kernel's dirty-page limits and so waits for the disk) and made durable, as our build makes
# its images durable before it renames them into place; the peer above does not sync.
floor_disk() {
  rm -f "$work/floor-disk.bin"
  cat "$inputs/weights.bin" >"$work/floor-disk.bin"
  sync "$work/floor-disk.bin"
}

echo "scale $scale: OCI layout $(du -sh "$inputs/oci" | cut -f1), weights $(du -sh "$inputs/weights.bin" | cut -f1)"
# Warm the page cache for everyone.
cat "$inputs"/oci/blobs/sha256/* "$inputs"/*.bin >/dev/null
# With BENCH_BASE, every other round runs it before ours: on a VM that returns freed memory to
# its host, the build that follows another's gigabytes of output pays for it (a 4 GiB build
# by up to half its time), so a fixed order would favour one of the two.
base_first() { [[ -n $base ]] && ((r % 2 == 0)); }
for r in $(seq "$rounds"); do
  echo "round $r"
  if [[ $only == *oci* ]]; then
    # shellcheck disable=SC2206
    warm=($layer_blobs)
    ! base_first || run base-oci base_oci
    run ours-oci ours_oci
    base_first || [[ -z $base ]] || run base-oci base_oci
    run peer-oci peer_oci
    # shellcheck disable=SC2206
    warm=($layer_blobs "$work/out-oci/rootfs.img")
    run floor-oci floor_oci
  fi
  if [[ $only == *disk* ]]; then
    warm=("$inputs/weights.bin")
    ! base_first || run base-disk base_disk
    run ours-disk ours_disk
    rss ours-disk
    base_first || [[ -z $base ]] || run base-disk base_disk
    run peer-disk peer_disk
    run floor-disk floor_disk
  fi
  if [[ $only == *verity* ]]; then
    for f in verity-1g weights; do
      warm=("$inputs/$f.bin")
      run "ours-v-$f" "$vbin" "$inputs/$f.bin" "$work/ours-v.hash"
      run "peer-v-$f" veritysetup format "$inputs/$f.bin" "$work/peer-v.hash"
    done
  fi
done

# median of per-round ratios A/B
ratio() {
  python3 - "${times[$1]}" "${times[$2]}" <<'PY'
import statistics, sys
a = [float(x) for x in sys.argv[1].split()]
b = [float(x) for x in sys.argv[2].split()]
r = sorted(x / y for x, y in zip(a, b))
print(f"{statistics.median(r):.3f} (rounds: {', '.join(f'{x:.3f}' for x in r)})")
PY
}
echo "summary (median over $rounds rounds of ours/other, same run):"
if [[ $only == *oci* ]]; then
  ours_img=$(stat -c %s "$work/out-oci/rootfs.img")
  peer_img=$(($(stat -c %s "$work/peer.img") + $(stat -c %s "$work/peer.hash")))
  echo "  OCI -> verity image, ours/peer (umoci+mkfs.erofs -T0+veritysetup): $(ratio ours-oci peer-oci)"
  echo "  OCI -> verity image, ours/floor (cat blobs + openssl dgst):        $(ratio ours-oci floor-oci)"
  if [[ -n $base ]]; then
    echo "  OCI -> verity image, ours/base: $(ratio ours-oci base-oci)"
    for f in rootfs.img record.json; do
      cmp -s "$work/out-oci/$f" "$work/base-oci/$f" && same=identical || same=DIFFERENT
      echo "  $f: $same to base's"
    done
  fi
  echo "  image size ours/peer (with verity area): $(echo "scale=4; $ours_img / $peer_img" | bc) ($ours_img / $peer_img bytes)"
fi
if [[ $only == *disk* ]]; then
  echo "  weights disk, ours/peer (mkfs.erofs -T0+veritysetup): $(ratio ours-disk peer-disk)"
  echo "  weights disk, ours/floor (cat + sync of the weights):   $(ratio ours-disk floor-disk)"
  echo "  weights disk, peer/floor:                               $(ratio peer-disk floor-disk)"
  if [[ -n $base ]]; then
    echo "  weights disk, ours/base: $(ratio ours-disk base-disk)"
    cmp -s "$work/out-disk/disk-weights.img" "$work/base-disk/disk-weights.img" && same=identical || same=DIFFERENT
    echo "  disk-weights.img: $same to base's"
  fi
  echo "  weights disk build, peak RSS: $((rss_kib / 1024)) MiB ($(du -h "$inputs/weights.bin" | cut -f1) weights)"
fi
if [[ $only == *verity* ]]; then
  echo "  dm-verity $(du -h "$inputs/verity-1g.bin" | cut -f1), ours/veritysetup: $(ratio ours-v-verity-1g peer-v-verity-1g)"
  echo "  dm-verity $(du -h "$inputs/weights.bin" | cut -f1), ours/veritysetup: $(ratio ours-v-weights peer-v-weights)"
fi
