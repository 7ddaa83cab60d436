"""An independent DSSE verifier for enclave-builder's signed releases, using only the Python
standard library and `cryptography` (pyca, OpenSSL-backed): nothing from enclave-builder.

Usage:
    python3 dsse_verify.py ENVELOPE.json PUBLIC_KEY.pem   > result.json

Written from the specifications:
- DSSE v1 (https://github.com/secure-systems-lab/dsse, protocol.md and envelope.md): the
  signature is over PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body,
  lengths as ASCII decimal byte counts; the envelope is JSON {payload: base64(body),
  payloadType, signatures: [{keyid, sig: base64}]}.
- Ed25519 (RFC 8032) signs the PAE bytes; ECDSA P-256 signs SHA-256 of them and the signature
  is DER-encoded (as securesystemslib and sigstore do).
- The keyid enclave-builder writes is the hex sha256 of the key's SubjectPublicKeyInfo DER.

Checks that the payload type is application/vnd.in-toto+json, that the signature whose keyid is
this key's verifies, and that the payload is an in-toto Statement v1. Prints {"fingerprint":
"sha256:<hex>", "statement": <the decoded statement>} and exits 0; exits 1 with a message on
stderr if any check fails.
"""

import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519


def pae(payload_type: str, body: bytes) -> bytes:
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def fail(msg: str) -> None:
    print("dsse_verify: " + msg, file=sys.stderr)
    sys.exit(1)


def main() -> None:
    envelope = json.load(open(sys.argv[1], "rb"))
    key = serialization.load_pem_public_key(open(sys.argv[2], "rb").read())
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    keyid = hashlib.sha256(spki).hexdigest()
    if envelope["payloadType"] != "application/vnd.in-toto+json":
        fail("payloadType is " + repr(envelope["payloadType"]))
    body = base64.b64decode(envelope["payload"], validate=True)
    message = pae(envelope["payloadType"], body)
    mine = [s for s in envelope["signatures"] if s.get("keyid") == keyid]
    if not mine:
        fail("no signature with keyid " + keyid)
    for s in mine:
        sig = base64.b64decode(s["sig"], validate=True)
        try:
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(sig, message)
            elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
                key.verify(sig, message, ec.ECDSA(hashes.SHA256()))
            else:
                fail("unsupported key type " + type(key).__name__)
        except InvalidSignature:
            fail("the signature by " + keyid + " does not verify")
    statement = json.loads(body)
    if statement.get("_type") != "https://in-toto.io/Statement/v1":
        fail("not an in-toto Statement v1: _type " + repr(statement.get("_type")))
    json.dump({"fingerprint": "sha256:" + keyid, "statement": statement}, sys.stdout)


main()
