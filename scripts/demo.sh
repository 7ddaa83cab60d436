#!/usr/bin/env bash
# Set-up and main job in one command: generate the demo inputs (deterministic OCI layouts and
# the kernel from ../shared/fixtures), then build manifests/demo.toml into out/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --release -p reproducibility-tests --bin demo-inputs -- manifests/demo-inputs
cargo run --quiet --release -p enclave-builder -- build manifests/demo.toml --out out/demo --force "$@"
