#!/usr/bin/env python3
"""Deterministic inputs for scripts/bench.sh: `bench-inputs.py DIR SCALE`.

Writes into DIR (skipped when DIR/done exists):
  (tree/       deleted once packed: many small files (100 B - 64 KiB, log-uniform) in ~1000 directories, half of
               them text-like (compressible), half pseudo-random, plus a few 64-256 MiB files
               (scaled by SCALE))
  oci/         an OCI image layout, ref "bench": layer 1 = the small files of even directories
               as tar+gzip, layer 2 = the rest (small files of odd directories + the large
               files) as plain tar; umoci can unpack it
  weights.bin  a 4 GiB (x SCALE) pseudo-random "weights" file for the data-disk benchmark
  verity-1g.bin  1 GiB (x SCALE) of pseudo-random data for the dm-verity benchmark
  sizes        shell variables: the OCI manifest digest, the blob paths
Pseudo-random bytes come from AES-128-CTR over zeros with a fixed key (openssl enc), so the
same SCALE gives the same bytes on every machine.
"""
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys

out, scale = sys.argv[1], float(sys.argv[2])
if os.path.exists(os.path.join(out, "done")):
    sys.exit(0)
os.makedirs(out, exist_ok=True)
MIB = 1 << 20


def prng(path, size, key):
    """`size` pseudo-random bytes from AES-128-CTR(key) over zeros."""
    with open(path, "wb") as f:
        enc = subprocess.Popen(
            ["openssl", "enc", "-aes-128-ctr", "-nosalt", "-K", key, "-iv", "0" * 32],
            stdin=subprocess.PIPE, stdout=f)
        left = size
        zeros = bytes(4 * MIB)
        while left > 0:
            n = min(left, len(zeros))
            enc.stdin.write(zeros[:n])
            left -= n
        enc.stdin.close()
        assert enc.wait() == 0


def blocks(n):
    """`n` bytes rounded down to whole 4 KiB blocks (dm-verity needs them), at least one."""
    return max(4096, n // 4096 * 4096)


tree = os.path.join(out, "tree")
rng = random.Random(20261130)
words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
         for _ in range(4000)]
pool_path = os.path.join(out, "pool.bin")
prng(pool_path, 64 * MIB, "00112233445566778899aabbccddeeff")
pool = open(pool_path, "rb").read()
ndirs = max(10, int(1000 * scale))
nfiles = max(100, int(26000 * scale))
for d in range(ndirs):
    os.makedirs(os.path.join(tree, f"d{d % 2}", f"dir{d:04}"), exist_ok=True)
for i in range(nfiles):
    d = i % ndirs
    size = int(100 * (65536 / 100) ** rng.random())
    if i % 2:
        off = rng.randrange(0, len(pool) - size)
        data = pool[off:off + size]
    else:
        parts, n = [], 0
        while n < size:
            w = rng.choice(words)
            parts.append(w)
            n += len(w) + 1
        data = b" ".join(parts)[:size]
    with open(os.path.join(tree, f"d{d % 2}", f"dir{d:04}", f"f{i:06}.dat"), "wb") as f:
        f.write(data)
big = os.path.join(tree, "d1", "big")
os.makedirs(big, exist_ok=True)
for i, mib in enumerate([64, 128, 256, 256]):
    prng(os.path.join(big, f"blob{i}.bin"), int(mib * MIB * scale), f"{i + 1:032x}")
os.remove(pool_path)

oci = os.path.join(out, "oci")
blobs = os.path.join(oci, "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)
tar = ["tar", "--sort=name", "--numeric-owner", "--owner=0", "--group=0", "--mtime=@0",
       "--format=gnu", "-C"]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(4 * MIB), b""):
            h.update(b)
    return h.hexdigest()


def add_blob(path):
    digest = sha256_file(path)
    size = os.path.getsize(path)
    os.rename(path, os.path.join(blobs, digest))
    return digest, size


layers, diff_ids = [], []
# Layer 1: tar+gzip of the even directories.
t1 = os.path.join(out, "l1.tar")
subprocess.run(tar + [os.path.join(tree, "d0"), "-cf", t1, "."], check=True)
diff_ids.append("sha256:" + sha256_file(t1))
subprocess.run(["gzip", "-n", "-6", t1], check=True)
d, s = add_blob(t1 + ".gz")
layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
               "digest": "sha256:" + d, "size": s})
# Layer 2: plain tar of the odd directories and the large files.
t2 = os.path.join(out, "l2.tar")
subprocess.run(tar + [os.path.join(tree, "d1"), "-cf", t2, "."], check=True)
diff_ids.append("sha256:" + sha256_file(t2))
d, s = add_blob(t2)
layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
               "digest": "sha256:" + d, "size": s})
shutil.rmtree(tree)


def add_json(obj):
    data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return digest, len(data)


cd, cs = add_json({"architecture": "amd64", "os": "linux",
                   "config": {"Entrypoint": ["/bin/true"]},
                   "rootfs": {"type": "layers", "diff_ids": diff_ids}})
md, ms = add_json({"schemaVersion": 2,
                   "mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                              "digest": "sha256:" + cd, "size": cs},
                   "layers": layers})
with open(os.path.join(oci, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json",
         "digest": "sha256:" + md, "size": ms,
         "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}, f)
with open(os.path.join(oci, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')

prng(os.path.join(out, "weights.bin"), blocks(int(4096 * MIB * scale)),
     "0f0e0d0c0b0a09080706050403020100")
prng(os.path.join(out, "verity-1g.bin"), blocks(int(1024 * MIB * scale)),
     "ffeeddccbbaa99887766554433221100")
with open(os.path.join(out, "sizes"), "w") as f:
    f.write(f"oci_manifest=sha256:{md}\n")
    f.write("layer_blobs='" + " ".join(
        os.path.join(blobs, l["digest"].split(":")[1]) for l in layers) + "'\n")
open(os.path.join(out, "done"), "w").close()
