#!/usr/bin/env bash
# The whole test suite: formatting, lints, then every test in the workspace (unit tests,
# reference-tool cross-checks, reproducibility builds), the no_std build of the verifier and
# a bounded run of every fuzz target. First, within seconds, it checks for
# every build and reference tool the tests run (scripts/packages.sh): as root on Debian it
# installs what is missing, otherwise it prints the install command and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each step's start and the time so far, on stderr, so a slow CI run shows where its time went.
step() { echo "== [$((SECONDS / 60))m$((SECONDS % 60))s] $*" >&2; }
step "packages"
bash scripts/packages.sh ensure build test fuzz
# check's clock variation runs cargo (component builds) three years ahead; cargo's automatic
# clean of its download cache would then delete every crate and fail to fetch it again
# (certificates look expired). The builder sets this for its own cargo calls too.
export CARGO_CACHE_AUTO_CLEAN_FREQUENCY=never
# Every crate the lock file names, so nothing is downloaded later (check runs a build under a
# shifted clock, where TLS certificates look expired).
step "fetch"
cargo fetch --locked
step "fmt"
cargo fmt --all -- --check
# demo-server (candle + tokenizers: a 10+ minute cold build, and a reference test that needs
# sentence-transformers with torch) is checked separately: `bash scripts/test-demo-server.sh`.
step "clippy"
cargo clippy --workspace --exclude demo-server --all-targets --locked -- -D warnings
# The reproducibility suite runs the real binary in separate processes: build it first, with
# the test-only injection switch (`check`'s tests need it). The release binary never has it:
# check.rs runs the plain build, kept in target/plain-builder, to prove it ignores the switch.
step "build"
cargo build --locked -p enclave-builder
mkdir -p target/plain-builder/debug
cp target/debug/enclave-builder target/plain-builder/debug/enclave-builder
cargo build --locked -p enclave-builder --features test-inject
# The example client a user runs; the reproducibility suite runs it against a booted demo VM.
cargo build --locked -p attested-server --example client
step "test"
cargo test --workspace --exclude demo-server --locked --no-fail-fast
# The verifier as a browser or a phone embeds it: no_std + alloc, without the `std` feature.
step "no_std"
cargo check --locked -p enclave-verifier --no-default-features
# Every fuzz target of the client's parsers, bounded (FUZZ_SECONDS each, default 15).
step "fuzz"
bash scripts/fuzz.sh
step "done"
