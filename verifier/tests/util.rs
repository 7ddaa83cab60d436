//! Test data and a SEV-SNP report builder that writes fields at the offsets the AMD SEV-SNP
//! ABI specification gives (independently of the crate's parser).

use p384::ecdsa::signature::Signer as _;
use p384::pkcs8::DecodePrivateKey as _;

/// A real report (virtee/sev tests/certs_data/report_milan.hex; see data/snp/README.md).
pub(crate) fn milan_report() -> Vec<u8> {
    hex::decode(include_str!("data/snp/report_milan.hex").trim()).unwrap()
}
/// The VCEK that signed it (DER, from the AMD KDS via virtee/sev).
pub(crate) const MILAN_VCEK: &[u8] = include_bytes!("data/snp/vcek_milan.der");
/// ASK then ARK (PEM), as the KDS `cert_chain` endpoint serves them.
pub(crate) const MILAN_CHAIN: &str = include_str!("data/snp/cert_chain_milan");

/// The TEST chain (not AMD's): see data/snp/test-chain/make.sh.
pub(crate) const TEST_ARK: &[u8] = include_bytes!("data/snp/test-chain/test-ark.pem");
/// Test ASK, signed by the test ARK.
pub(crate) const TEST_ASK: &[u8] = include_bytes!("data/snp/test-chain/test-ask.pem");
/// Another root with the test ARK's name.
pub(crate) const OTHER_ARK: &[u8] = include_bytes!("data/snp/test-chain/other-ark.pem");
/// The test VCEK certificate (P-384 key, signed by the test ASK; TCB 3/0/8/115, hwID 0x11 x 64).
pub(crate) const TEST_VCEK: &[u8] = include_bytes!("data/snp/test-chain/test-vcek.der");
/// The private key standing in for the chip's VCEK.
const TEST_VCEK_KEY: &str = include_str!("data/snp/test-chain/test-vcek-key.pem");

/// The test chain as trust anchors (Milan TCB layout).
pub(crate) fn test_anchors() -> verifier::snp::TrustAnchors {
    verifier::snp::TrustAnchors::new([verifier::snp::TrustAnchor {
        product: verifier::snp::Product::Milan,
        ark: TEST_ARK.to_vec(),
        ask: TEST_ASK.to_vec(),
    }])
    .unwrap()
}

/// The fields a test sets; everything else is zero.
#[derive(Clone)]
pub(crate) struct Fields {
    pub(crate) version: u32,
    pub(crate) policy: u64,
    pub(crate) vmpl: u32,
    pub(crate) report_data: [u8; 64],
    pub(crate) measurement: [u8; 48],
    /// REPORTED_TCB bytes (Milan: bootloader, tee, 4 reserved, snp, microcode).
    pub(crate) reported_tcb: [u8; 8],
    pub(crate) chip_id: [u8; 64],
}

impl Default for Fields {
    fn default() -> Self {
        Fields {
            version: 3,
            // ABI 0.0, SMT allowed (bit 16), reserved bit 17 set: QEMU's default 0x30000.
            policy: 0x30000,
            vmpl: 0,
            report_data: [0; 64],
            measurement: [0; 48],
            reported_tcb: [3, 0, 0, 0, 0, 0, 8, 115],
            chip_id: [0x11; 64],
        }
    }
}

/// Writes `f` at the ABI offsets and signs bytes 0..0x2A0 with the test VCEK key.
pub(crate) fn build_report(f: &Fields) -> Vec<u8> {
    let mut b = vec![0u8; 0x4A0];
    let mut put = |off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
    put(0x000, &f.version.to_le_bytes());
    put(0x008, &f.policy.to_le_bytes());
    put(0x030, &f.vmpl.to_le_bytes());
    put(0x034, &1u32.to_le_bytes()); // SIGNATURE_ALGO: ECDSA P-384 SHA-384
    put(0x038, &f.reported_tcb); // CURRENT_TCB
    put(0x050, &f.report_data);
    put(0x090, &f.measurement);
    put(0x180, &f.reported_tcb);
    put(0x1A0, &f.chip_id);
    put(0x1E0, &f.reported_tcb); // COMMITTED_TCB
    put(0x1F0, &f.reported_tcb); // LAUNCH_TCB
    sign(&mut b);
    b
}

/// (Re)signs a report in place: r and s little-endian in 72-byte fields at 0x2A0, 0x2E8.
pub(crate) fn sign(b: &mut [u8]) {
    let key = p384::ecdsa::SigningKey::from_pkcs8_pem(TEST_VCEK_KEY).unwrap();
    let sig: p384::ecdsa::Signature = key.sign(&b[..0x2A0]);
    let (r, s) = sig.split_bytes();
    let mut r = r.to_vec();
    let mut s = s.to_vec();
    r.reverse();
    s.reverse();
    b[0x2A0..0x2A0 + 72].fill(0);
    b[0x2E8..0x2E8 + 72].fill(0);
    b[0x2A0..0x2A0 + 48].copy_from_slice(&r);
    b[0x2E8..0x2E8 + 48].copy_from_slice(&s);
}

/// Names of the failed checks.
pub(crate) fn failed(v: &verifier::Verdict) -> Vec<String> {
    v.failures().map(|c| c.name.clone()).collect()
}
