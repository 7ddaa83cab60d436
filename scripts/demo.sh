#!/usr/bin/env bash
# Set-up and main job in one command: generate the demo inputs (deterministic OCI layouts and
# the kernel from ../shared/fixtures), then build manifests/demo.toml into out/demo.
# First, within seconds, it checks for every build tool it needs (scripts/packages.sh, set
# `build`): as root on Debian it installs what is missing, otherwise it prints the install
# command and stops before any work.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/packages.sh ensure build
cargo run --quiet --release -p reproducibility-tests --bin demo-inputs -- manifests/demo-inputs
cargo run --quiet --release -p enclave-builder -- build manifests/demo.toml --out out/demo --force "$@"
