//! The binding convention, checked against Python's hashlib (an independent implementation).

use std::process::Command;

#[test]
fn binding_matches_python_hashlib() {
    let spki = b"\x30\x59 not really a key";
    let nonce = [0xA5u8; 32];
    let script = "import hashlib,sys\n\
        spki=bytes.fromhex(sys.argv[1]); nonce=bytes.fromhex(sys.argv[2])\n\
        m=b'enclave-builder attestation v1\\x00'+hashlib.sha256(spki).digest()+nonce\n\
        print(hashlib.sha512(m).hexdigest())";
    let out = Command::new("python3")
        .args(["-c", script, &hex::encode(spki), &hex::encode(nonce)])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = String::from_utf8(out.stdout).unwrap();
    let got = verifier::binding::report_data(spki, &nonce);
    assert_eq!(hex::encode(got), want.trim());
}
