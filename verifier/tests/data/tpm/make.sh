#!/bin/sh
# Regenerates the vTPM quote vectors: a real swtpm (TPM 2.0 emulator, Debian `swtpm`) driven
# by tpm2-tools (Debian `tpm2-tools`) over TCP on 127.0.0.1. Writes, per AK type (ecc, rsa):
# ak-TYPE.pem (the AK public key), quote-TYPE.msg (TPMS_ATTEST), quote-TYPE.sig
# (TPMT_SIGNATURE); and server.pem (a server key), pcrs.txt (tpm2_pcrread of the quoted PCRs).
# The quote's qualifying data is the binding of server.pem and the nonce 00112233..ff
# (docs/verifying.md), computed here with Python's hashlib, independently of the verifier.
set -eu
cd "$(dirname "$0")"
state=$(mktemp -d)
trap 'kill $pid 2>/dev/null; rm -rf "$state"' EXIT
port=${PORT:-23210}
swtpm socket --tpm2 --tpmstate dir="$state" --flags startup-clear \
	--server type=tcp,port=$port,bindaddr=127.0.0.1 \
	--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 &
pid=$!
sleep 1
export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$port"
openssl ecparam -genkey -name prime256v1 -noout | openssl pkey -pubout -out server.pem
nonce=00112233445566778899aabbccddeeff
q=$(python3 - "$nonce" <<'PY'
import hashlib, subprocess, sys
der = subprocess.run(["openssl", "pkey", "-pubin", "-in", "server.pem", "-outform", "DER"],
                     check=True, capture_output=True).stdout
b = hashlib.sha512(b"enclave-builder attestation v1\0" + hashlib.sha256(der).digest()
                   + bytes.fromhex(sys.argv[1])).digest()
print(b[:32].hex())
PY
)
echo "$q" > qualifying.hex
# Stand-ins for a measured boot's PCR 4 and PCR 11 (any extend works: the quote covers values).
tpm2_pcrextend 4:sha256=$(printf 'uki' | sha256sum | cut -c1-64)
tpm2_pcrextend 11:sha256=$(printf '.linux' | sha256sum | cut -c1-64)
tpm2_pcrread sha256:4,11 > pcrs.txt
for t in ecc rsa; do
	case $t in ecc) g=ecc s=ecdsa ;; rsa) g=rsa s=rsassa ;; esac
	# No resource manager: flush transient objects and sessions after each tool.
	tpm2_createek -c "$state/ek-$t.ctx" -G $g -u "$state/ek-$t.pub"
	tpm2_flushcontext -t; tpm2_flushcontext -s
	tpm2_createak -C "$state/ek-$t.ctx" -c "$state/ak-$t.ctx" -G $g -g sha256 -s $s \
		-u ak-$t.pem -f pem -n "$state/ak-$t.name"
	tpm2_flushcontext -t; tpm2_flushcontext -s
	tpm2_quote -c "$state/ak-$t.ctx" -l sha256:4,11 -q "$q" -g sha256 \
		-m quote-$t.msg -s quote-$t.sig -o "$state/pcrs-$t.out"
	# tpm2-tools' own check of the quote (signature, nonce, PCR digest), as a reference.
	tpm2_checkquote -u ak-$t.pem -m quote-$t.msg -s quote-$t.sig -f "$state/pcrs-$t.out" -q "$q"
	tpm2_flushcontext -t; tpm2_flushcontext -s
done
echo "wrote $(ls)"
