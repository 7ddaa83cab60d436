#!/usr/bin/env bash
# Push and pull a 1 GiB release through a local registry (Debian's docker-registry on
# 127.0.0.1) and report throughput and peak RSS (/usr/bin/time -v) of each. Not part of the
# tests. Usage: bash scripts/bench-registry.sh [SIZE_MIB]   (default 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
cargo build -q --release -p enclave-builder
bin=$PWD/target/release/enclave-builder
work=$(mktemp -d)
reg_pid=
cleanup() { [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/config.yml" <<CFG
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/data}}
http: {addr: 127.0.0.1:$port}
CFG
/usr/bin/docker-registry serve "$work/config.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

rel=$work/rel
mkdir "$rel"
head -c $((size_mib << 20)) /dev/urandom >"$rel/disk-model.img"
echo "console=ttyS0" >"$rel/cmdline"
python3 - "$rel" <<'PY'
import hashlib, json, os, sys
d = sys.argv[1]
outs = []
for n in sorted(os.listdir(d)):
    h = hashlib.sha256()
    with open(os.path.join(d, n), "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    outs.append({"name": n, "size": os.path.getsize(os.path.join(d, n)), "sha256": h.hexdigest()})
json.dump({"outputs": outs}, open(os.path.join(d, "record.json"), "w"))
PY

measure() { # label, command...
  local label=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -v "$@" >"$work/$label.out" 2>"$work/$label.time"
  t1=$(date +%s.%N)
  local rss secs
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/$label.time")
  secs=$(echo "$t1 - $t0" | bc -l)
  printf '%-5s %6d MiB in %6.2f s = %7.1f MB/s, peak RSS %6.1f MiB\n' "$label" "$size_mib" "$secs" \
    "$(echo "$size_mib * 1048576 / $secs / 1000000" | bc -l)" "$(echo "$rss / 1024" | bc -l)"
}
measure push "$bin" push -q "$rel" "127.0.0.1:$port/bench/release:1"
digest=$(tail -1 "$work/push.out")
measure pull "$bin" pull -q "127.0.0.1:$port/bench/release@$digest" --out "$work/pulled"
cmp "$rel/disk-model.img" "$work/pulled/disk-model.img" && echo "pulled bytes identical ($digest)"
