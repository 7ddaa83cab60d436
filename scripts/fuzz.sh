#!/usr/bin/env bash
# Runs every fuzz target of the client's parsers (verifier/fuzz) for a bounded time, each
# seeded with the real evidence the verifier's tests use (a corpus built in a temporary
# directory; nothing is written into the repository). A crash or a panic fails the script and
# libFuzzer leaves the input under verifier/fuzz/artifacts/TARGET/.
#
#   bash scripts/fuzz.sh            # every target, FUZZ_SECONDS (default 15) each
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh snp_report
#
# Needs the nightly toolchain and cargo-fuzz (scripts/packages.sh, set `fuzz`). Built without
# a sanitizer: the verifier forbids `unsafe`, so what libFuzzer looks for here is panics
# (index out of range, overflow with debug assertions on, unwrap), and the build is minutes
# shorter (it is part of scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/packages.sh ensure fuzz
seconds=${FUZZ_SECONDS:-15}
data=verifier/tests/data
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT

seed() { # TARGET FILE...
	local t=$1
	shift
	mkdir -p "$corpus/$t"
	for f in "$@"; do
		cp "$f" "$corpus/$t/$(basename "$f")"
	done
}
python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(open(sys.argv[1]).read()))' \
	"$data/snp/report_milan.hex" >"$corpus/report_milan.bin"
seed snp_report "$corpus/report_milan.bin" "$data/snp/go-sev-guest-attestation.bin"
seed snp_certs "$data/snp/vcek_milan.der" "$data/snp/go-sev-guest-vcek.der" "$data/snp/test-chain/test-ark.pem"
seed tdx_quote "$data/tdx/tdx_quote"
seed release "$data/snp/test-chain/test-vcek-key.pem"
if [ -d "$data/tpm" ]; then
	seed tpm_quote "$data"/tpm/*
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' verifier/fuzz/Cargo.toml | grep -v '^enclave-verifier-fuzz$')
fi
cd verifier
log=$corpus/log
for t in "${targets[@]}"; do
	mkdir -p "$corpus/$t"
	echo "fuzz: $t, ${seconds} s"
	if ! cargo +nightly fuzz run --sanitizer none "$t" "$corpus/$t" -- \
		-max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
		tail -n 40 "$log" >&2
		echo "fuzz: $t FAILED (the input is in verifier/fuzz/artifacts/$t/)" >&2
		exit 1
	fi
	grep -E '^stat::(number_of_executed_units|new_units_added)' "$log" | sed 's/^/    /' || true
done
