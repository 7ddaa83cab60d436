//! vTPM quotes from a real swtpm (tests/data/tpm, made by tpm2-tools; tpm2_checkquote
//! accepted them): each verifies against the PCR values `tpm2_pcrread` printed and the
//! binding Python computed, and each tampering fails with its own named check.

use std::collections::BTreeMap;

use verifier::tpm::{self, Attest, TpmEvidence, TpmRelease};

fn read(name: &str) -> Vec<u8> {
    let bytes: &[u8] = match name {
        "pcrs.txt" => include_bytes!("data/tpm/pcrs.txt"),
        "qualifying.hex" => include_bytes!("data/tpm/qualifying.hex"),
        "server.pem" => include_bytes!("data/tpm/server.pem"),
        "ak-ecc.pem" => include_bytes!("data/tpm/ak-ecc.pem"),
        "ak-rsa.pem" => include_bytes!("data/tpm/ak-rsa.pem"),
        "quote-ecc.msg" => include_bytes!("data/tpm/quote-ecc.msg"),
        "quote-ecc.sig" => include_bytes!("data/tpm/quote-ecc.sig"),
        "quote-rsa.msg" => include_bytes!("data/tpm/quote-rsa.msg"),
        "quote-rsa.sig" => include_bytes!("data/tpm/quote-rsa.sig"),
        other => panic!("no test file {other}"),
    };
    bytes.to_vec()
}

/// PCR `n`'s value as `tpm2_pcrread` printed it in pcrs.txt.
fn pcr(n: u32) -> [u8; 32] {
    let text = String::from_utf8(read("pcrs.txt")).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim().split(':').next().map(str::trim) == Some(&n.to_string()))
        .unwrap();
    let hex_value = line.split("0x").nth(1).unwrap().trim();
    hex::decode(hex_value).unwrap().try_into().unwrap()
}

fn release() -> TpmRelease {
    TpmRelease {
        profile: "swtpm".into(),
        pcr4: pcr(4),
        pcr11: pcr(11),
        other: BTreeMap::new(),
    }
}

fn qualifying() -> Vec<u8> {
    let spki = verifier::binding::server_key_der(&read("server.pem")).unwrap();
    let binding = verifier::binding::report_data(
        &spki,
        &hex::decode("00112233445566778899aabbccddeeff").unwrap(),
    );
    let q = verifier::binding::tpm_qualifying_data(&binding).to_vec();
    // The convention as Python's hashlib computed it (make.sh).
    let py = String::from_utf8(read("qualifying.hex")).unwrap();
    assert_eq!(hex::encode(&q), py.trim());
    q
}

fn failures(ty: &str, attest: &[u8], sig: &[u8], release: &TpmRelease, q: &[u8]) -> Vec<String> {
    let ak = read(&format!("ak-{ty}.pem"));
    let ev = TpmEvidence {
        attest,
        signature: sig,
        ak: &ak,
    };
    let v = tpm::verify(&ev, release, q);
    assert_eq!(v.passed(), v.failures().next().is_none(), "{v}");
    v.failures().map(|c| c.name.clone()).collect()
}

#[test]
fn real_swtpm_quotes_verify() {
    for ty in ["ecc", "rsa"] {
        let msg = read(&format!("quote-{ty}.msg"));
        let sig = read(&format!("quote-{ty}.sig"));
        assert_eq!(
            failures(ty, &msg, &sig, &release(), &qualifying()),
            Vec::<String>::new(),
            "{ty}"
        );
        let a = Attest::parse(&msg).unwrap();
        assert_eq!(a.selection.len(), 1);
        assert_eq!(a.selection[0].pcrs, [4, 11]);
        assert_eq!(a.clock.safe, 1);
        // A TPM2B_ATTEST (size-prefixed) is the same quote.
        let mut sized = (msg.len() as u16).to_be_bytes().to_vec();
        sized.extend_from_slice(&msg);
        assert!(failures(ty, &sized, &sig, &release(), &qualifying()).is_empty());
    }
}

#[test]
fn each_tampering_fails_its_own_check() {
    for ty in ["ecc", "rsa"] {
        let msg = read(&format!("quote-{ty}.msg"));
        let sig = read(&format!("quote-{ty}.sig"));
        let q = qualifying();
        // Any flipped bit of the signed data: the signature (and whatever field it hit).
        for bit in (0..msg.len() * 8).step_by(7) {
            let mut m = msg.clone();
            m[bit / 8] ^= 1 << (bit % 8);
            let f = failures(ty, &m, &sig, &release(), &q);
            assert!(
                f.contains(&"tpm.signature".to_owned()) || f.contains(&"tpm.attest".to_owned()),
                "{ty} bit {bit}: {f:?}"
            );
        }
        // A flipped bit of the signature.
        let mut s = sig.clone();
        let last = s.len() - 1;
        s[last] ^= 1;
        assert_eq!(failures(ty, &msg, &s, &release(), &q), ["tpm.signature"]);
        // Another nonce.
        let mut other = q.clone();
        other[0] ^= 1;
        assert_eq!(failures(ty, &msg, &sig, &release(), &other), ["tpm.nonce"]);
        // Another release's PCR 11 (e.g. a changed command line).
        let mut r = release();
        r.pcr11[31] ^= 1;
        assert_eq!(failures(ty, &msg, &sig, &r, &q), ["tpm.pcr_digest"]);
        // A PCR the quote does not cover.
        let mut r = release();
        r.other.insert(7, [0; 32]);
        assert_eq!(
            failures(ty, &msg, &sig, &r, &q),
            ["tpm.pcr_selection", "tpm.pcr_digest"]
        );
    }
    // The other type's AK: wrong algorithm, no valid signature.
    let msg = read("quote-ecc.msg");
    let sig = read("quote-ecc.sig");
    assert_eq!(
        failures("rsa", &msg, &sig, &release(), &qualifying()),
        ["tpm.signature.algorithm", "tpm.signature"]
    );
}

#[test]
fn hostile_bytes_never_pass() {
    let msg = read("quote-ecc.msg");
    let sig = read("quote-ecc.sig");
    for cut in 0..msg.len() {
        let f = failures("ecc", &msg[..cut], &sig, &release(), &qualifying());
        assert_eq!(
            f.first().map(String::as_str),
            Some("tpm.attest"),
            "cut {cut}"
        );
    }
    for cut in 0..sig.len() {
        let f = failures("ecc", &msg, &sig[..cut], &release(), &qualifying());
        assert!(f.contains(&"tpm.signature".to_owned()), "cut {cut}: {f:?}");
    }
    let ev = TpmEvidence {
        attest: &msg,
        signature: &sig,
        ak: b"not a key",
    };
    let v = tpm::verify(&ev, &release(), &qualifying());
    let names: Vec<_> = v.failures().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["tpm.ak", "tpm.signature"]);
}
