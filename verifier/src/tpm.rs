//! vTPM quotes: a `TPM2_Quote` result (`TPMS_ATTEST` + `TPMT_SIGNATURE`) against a release's
//! predicted PCR 4 and PCR 11 and the session binding.
//!
//! Layouts from the TPM 2.0 Library specification, Part 2 (Structures), all big-endian:
//!
//! ```text
//! TPMS_ATTEST     magic u32 (TPM_GENERATED_VALUE 0xff544347) | type u16 (TPM_ST_ATTEST_QUOTE 0x8018)
//!                 | qualifiedSigner TPM2B_NAME | extraData TPM2B_DATA
//!                 | clockInfo (clock u64, resetCount u32, restartCount u32, safe u8)
//!                 | firmwareVersion u64 | TPMS_QUOTE_INFO
//! TPMS_QUOTE_INFO pcrSelect TPML_PCR_SELECTION (count u32, then per bank: hash u16,
//!                 sizeofSelect u8, pcrSelect[sizeofSelect], bit n of byte n/8 = PCR n)
//!                 | pcrDigest TPM2B_DIGEST
//! TPMT_SIGNATURE  sigAlg u16 | hash u16 | RSASSA: TPM2B sig | ECDSA: TPM2B r, TPM2B s
//! TPM2B_x         size u16 | size bytes
//! ```
//!
//! The quote is accepted when the signature over the `TPMS_ATTEST` bytes verifies with the
//! attestation key (AK) the caller trusts, `extraData` equals the binding's qualifying data,
//! the selection is exactly the SHA-256 bank's PCRs expected (4, 11 and any others passed
//! in) and `pcrDigest` = SHA-256 of those PCR values concatenated in ascending PCR order.
//! Which AK to trust (an EK certificate chain, a cloud provider's API) is the caller's
//! decision: the key is passed in.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use sha2::{Digest as _, Sha256};

use crate::snp::Hex;
use crate::Verdict;

/// `TPM_GENERATED_VALUE`.
pub const MAGIC: u32 = 0xff54_4347;
/// `TPM_ST_ATTEST_QUOTE`.
pub const ST_ATTEST_QUOTE: u16 = 0x8018;
/// `TPM_ALG_SHA256`.
pub const ALG_SHA256: u16 = 0x000b;
/// `TPM_ALG_RSASSA`.
pub const ALG_RSASSA: u16 = 0x0014;
/// `TPM_ALG_ECDSA`.
pub const ALG_ECDSA: u16 = 0x0018;

/// A bounds-checked big-endian reader: every read is `None` past the end.
struct Be<'a> {
    bytes: &'a [u8],
}

impl<'a> Be<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (self.bytes.get(..n)?, self.bytes.get(n..)?);
        self.bytes = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn tpm2b(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// `TPMS_CLOCK_INFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockInfo {
    /// Milliseconds the TPM has been powered (while not in reset).
    pub clock: u64,
    /// TPM resets (power cycles) since the TPM was created.
    pub reset_count: u32,
    /// TPM restarts since the last reset.
    pub restart_count: u32,
    /// 1 when `clock` has not been rolled back.
    pub safe: u8,
}

/// One `TPMS_PCR_SELECTION`: a bank and its selected PCRs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrSelection {
    /// The bank's hash algorithm (`TPM_ALG_ID`).
    pub hash: u16,
    /// The selected PCR indices, ascending.
    pub pcrs: Vec<u32>,
}

/// A parsed `TPMS_ATTEST` of type quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attest<'a> {
    /// `magic` (must be [`MAGIC`] for TPM-generated data).
    pub magic: u32,
    /// `type` (must be [`ST_ATTEST_QUOTE`]).
    pub kind: u16,
    /// `qualifiedSigner`: the AK's qualified name.
    pub qualified_signer: &'a [u8],
    /// `extraData`: the caller's qualifying data (the nonce / binding).
    pub extra_data: &'a [u8],
    /// `clockInfo`.
    pub clock: ClockInfo,
    /// `firmwareVersion` (vendor-defined).
    pub firmware_version: u64,
    /// `pcrSelect`.
    pub selection: Vec<PcrSelection>,
    /// `pcrDigest`: the hash of the selected PCR values.
    pub pcr_digest: &'a [u8],
}

/// Why quote bytes could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The bytes end inside the named field.
    Truncated(&'static str),
    /// Bytes follow the structure.
    Trailing(usize),
    /// The structure is not a quote (`type` other than `TPM_ST_ATTEST_QUOTE`).
    NotAQuote(u16),
    /// A PCR selection names more than 32 bytes of bitmap.
    SelectTooLong(u8),
}

impl core::fmt::Display for ParseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated(field) => write!(f, "truncated in {field}"),
            Self::Trailing(n) => write!(f, "{n} bytes after the structure"),
            Self::NotAQuote(t) => write!(f, "type {t:#06x}, not a quote (0x8018)"),
            Self::SelectTooLong(n) => write!(f, "PCR selection of {n} bytes (at most 32)"),
        }
    }
}

impl<'a> Attest<'a> {
    /// Parses a `TPMS_ATTEST`, or a `TPM2B_ATTEST` (size-prefixed) holding one.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ParseError> {
        let body = attest_body(bytes);
        let t = ParseError::Truncated;
        let mut r = Be { bytes: body };
        let magic = r.u32().ok_or(t("magic"))?;
        let kind = r.u16().ok_or(t("type"))?;
        if kind != ST_ATTEST_QUOTE {
            return Err(ParseError::NotAQuote(kind));
        }
        let qualified_signer = r.tpm2b().ok_or(t("qualifiedSigner"))?;
        let extra_data = r.tpm2b().ok_or(t("extraData"))?;
        let clock = ClockInfo {
            clock: r.u64().ok_or(t("clockInfo.clock"))?,
            reset_count: r.u32().ok_or(t("clockInfo.resetCount"))?,
            restart_count: r.u32().ok_or(t("clockInfo.restartCount"))?,
            safe: r.u8().ok_or(t("clockInfo.safe"))?,
        };
        let firmware_version = r.u64().ok_or(t("firmwareVersion"))?;
        let count = r.u32().ok_or(t("pcrSelect.count"))?;
        let mut selection = Vec::new();
        for _ in 0..count {
            let hash = r.u16().ok_or(t("pcrSelect.hash"))?;
            let n = r.u8().ok_or(t("pcrSelect.sizeofSelect"))?;
            if n > 32 {
                return Err(ParseError::SelectTooLong(n));
            }
            let bitmap = r.take(usize::from(n)).ok_or(t("pcrSelect.pcrSelect"))?;
            let mut pcrs = Vec::new();
            for (i, byte) in (0u32..).zip(bitmap) {
                for bit in 0..8 {
                    if byte & (1 << bit) != 0 {
                        pcrs.push(i * 8 + bit);
                    }
                }
            }
            selection.push(PcrSelection { hash, pcrs });
        }
        let pcr_digest = r.tpm2b().ok_or(t("pcrDigest"))?;
        if !r.bytes.is_empty() {
            return Err(ParseError::Trailing(r.bytes.len()));
        }
        Ok(Attest {
            magic,
            kind,
            qualified_signer,
            extra_data,
            clock,
            firmware_version,
            selection,
            pcr_digest,
        })
    }
}

/// The `TPMS_ATTEST` bytes the signature covers: `bytes` itself, or the body of a
/// `TPM2B_ATTEST` whose size prefix covers exactly the rest.
fn attest_body(bytes: &[u8]) -> &[u8] {
    if bytes.starts_with(&MAGIC.to_be_bytes()) {
        return bytes;
    }
    match (bytes.get(..2), bytes.get(2..)) {
        (Some(n), Some(rest)) if usize::from(u16::from_be_bytes([n[0], n[1]])) == rest.len() => {
            rest
        }
        _ => bytes,
    }
}

/// A parsed `TPMT_SIGNATURE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature<'a> {
    /// `TPM_ALG_RSASSA` (PKCS#1 v1.5).
    RsaSsa {
        /// The hash algorithm.
        hash: u16,
        /// The signature.
        sig: &'a [u8],
    },
    /// `TPM_ALG_ECDSA`.
    Ecdsa {
        /// The hash algorithm.
        hash: u16,
        /// `signatureR`.
        r: &'a [u8],
        /// `signatureS`.
        s: &'a [u8],
    },
    /// Any other algorithm (never accepted).
    Other {
        /// `sigAlg`.
        alg: u16,
    },
}

impl<'a> Signature<'a> {
    /// Parses a `TPMT_SIGNATURE`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ParseError> {
        let t = ParseError::Truncated;
        let mut r = Be { bytes };
        let alg = r.u16().ok_or(t("sigAlg"))?;
        let sig = match alg {
            ALG_RSASSA => Signature::RsaSsa {
                hash: r.u16().ok_or(t("hash"))?,
                sig: r.tpm2b().ok_or(t("sig"))?,
            },
            ALG_ECDSA => Signature::Ecdsa {
                hash: r.u16().ok_or(t("hash"))?,
                r: r.tpm2b().ok_or(t("signatureR"))?,
                s: r.tpm2b().ok_or(t("signatureS"))?,
            },
            alg => return Ok(Signature::Other { alg }),
        };
        if !r.bytes.is_empty() {
            return Err(ParseError::Trailing(r.bytes.len()));
        }
        Ok(sig)
    }

    fn name(&self) -> String {
        match self {
            Signature::RsaSsa { hash, .. } => format!("rsassa-{}", hash_name(*hash)),
            Signature::Ecdsa { hash, .. } => format!("ecdsa-{}", hash_name(*hash)),
            Signature::Other { alg } => format!("algorithm {alg:#06x}"),
        }
    }
}

fn hash_name(h: u16) -> String {
    match h {
        ALG_SHA256 => "sha256".into(),
        0x0004 => "sha1".into(),
        0x000c => "sha384".into(),
        0x000d => "sha512".into(),
        h => format!("{h:#06x}"),
    }
}

/// The attestation key: an ECDSA P-256 or RSA public key.
#[derive(Debug, Clone)]
pub enum AkPublic {
    /// ECDSA over NIST P-256.
    P256(p256::ecdsa::VerifyingKey),
    /// RSA (PKCS#1 v1.5 signatures).
    Rsa(rsa::RsaPublicKey),
}

impl AkPublic {
    /// Reads a SubjectPublicKeyInfo, DER or PEM (`PUBLIC KEY`), as `tpm2_createak -f pem`
    /// writes it. `None` for anything else.
    pub fn from_spki(bytes: &[u8]) -> Option<Self> {
        use p256::pkcs8::DecodePublicKey as _;
        let der = crate::binding::pem_or_der(bytes)?;
        let der: &[u8] = &der;
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Some(AkPublic::P256(k));
        }
        rsa::RsaPublicKey::from_public_key_der(der)
            .ok()
            .map(AkPublic::Rsa)
    }

    fn algorithm(&self) -> &'static str {
        match self {
            AkPublic::P256(_) => "ecdsa-sha256",
            AkPublic::Rsa(_) => "rsassa-sha256",
        }
    }

    /// Whether `sig` is this key's SHA-256 signature over `message`.
    fn verifies(&self, message: &[u8], sig: &Signature<'_>) -> bool {
        match (self, sig) {
            (
                AkPublic::P256(k),
                Signature::Ecdsa {
                    hash: ALG_SHA256,
                    r,
                    s,
                },
            ) => {
                use p256::ecdsa::signature::Verifier as _;
                let (Some(r), Some(s)) = (scalar32(r), scalar32(s)) else {
                    return false;
                };
                match p256::ecdsa::Signature::from_scalars(r, s) {
                    Ok(sig) => k.verify(message, &sig).is_ok(),
                    Err(_) => false,
                }
            }
            (
                AkPublic::Rsa(k),
                Signature::RsaSsa {
                    hash: ALG_SHA256,
                    sig,
                },
            ) => {
                use rsa::signature::Verifier as _;
                let key = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(k.clone());
                match rsa::pkcs1v15::Signature::try_from(*sig) {
                    Ok(sig) => key.verify(message, &sig).is_ok(),
                    Err(_) => false,
                }
            }
            _ => false,
        }
    }
}

/// An ECDSA scalar as 32 big-endian bytes (left-padded; leading zeros stripped).
fn scalar32(v: &[u8]) -> Option<[u8; 32]> {
    let start = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    let v = v.get(start..)?;
    let mut out = [0u8; 32];
    let at = 32usize.checked_sub(v.len())?;
    out.get_mut(at..)?.copy_from_slice(v);
    Some(out)
}

/// What the release predicts for the quoted PCRs (SHA-256 bank).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmRelease {
    /// The record's vTPM profile.
    pub profile: String,
    /// Predicted PCR 4.
    pub pcr4: [u8; 32],
    /// Predicted PCR 11.
    pub pcr11: [u8; 32],
    /// Other PCRs the quote must cover, with their expected values (e.g. from a reference
    /// boot); must not name 4 or 11.
    pub other: BTreeMap<u32, [u8; 32]>,
}

/// The evidence: the quote's attestation data and signature, and the AK that signed them.
#[derive(Debug, Clone, Copy)]
pub struct TpmEvidence<'a> {
    /// `TPMS_ATTEST` (`tpm2_quote --message`), or a `TPM2B_ATTEST`.
    pub attest: &'a [u8],
    /// `TPMT_SIGNATURE` (`tpm2_quote --signature`, TSS format).
    pub signature: &'a [u8],
    /// The AK's public key, SubjectPublicKeyInfo DER or PEM.
    pub ak: &'a [u8],
}

/// Checks a vTPM quote against a release and the expected qualifying data (the first 32
/// bytes of the binding: [`crate::binding::tpm_qualifying_data`]).
///
/// Named checks: `tpm.attest`, `tpm.magic`, `tpm.ak`, `tpm.signature.algorithm`,
/// `tpm.signature`, `tpm.nonce`, `tpm.pcr_selection`, `tpm.pcr_digest`.
pub fn verify(evidence: &TpmEvidence<'_>, release: &TpmRelease, qualifying: &[u8]) -> Verdict {
    let mut v = Verdict::default();
    let attest = match Attest::parse(evidence.attest) {
        Ok(a) => a,
        Err(e) => {
            v.record("tpm.attest", false, "a TPMS_ATTEST quote", e);
            return v;
        }
    };
    v.record(
        "tpm.attest",
        true,
        "a TPMS_ATTEST quote",
        "a TPMS_ATTEST quote",
    );
    v.check(
        "tpm.magic",
        format!("{MAGIC:#010x}"),
        format!("{:#010x}", attest.magic),
    );
    let ak = AkPublic::from_spki(evidence.ak);
    let sig = Signature::parse(evidence.signature);
    match (&ak, &sig) {
        (None, _) => {
            v.record(
                "tpm.ak",
                false,
                "an ECDSA P-256 or RSA public key (SubjectPublicKeyInfo)",
                "unreadable",
            );
            v.record("tpm.signature", false, "signed by the AK", "no AK");
        }
        (Some(_), Err(e)) => {
            v.record("tpm.signature", false, "a TPMT_SIGNATURE", e);
        }
        (Some(ak), Ok(sig)) => {
            v.check("tpm.signature.algorithm", ak.algorithm(), sig.name());
            let ok = ak.verifies(attest_body(evidence.attest), sig);
            v.record(
                "tpm.signature",
                ok,
                "valid, by the AK",
                if ok { "valid, by the AK" } else { "invalid" },
            );
        }
    }
    v.check("tpm.nonce", Hex(qualifying), Hex(attest.extra_data));

    let mut expected: BTreeMap<u32, [u8; 32]> = release.other.clone();
    expected.insert(4, release.pcr4);
    expected.insert(11, release.pcr11);
    let want_sel = selection_text(&[PcrSelection {
        hash: ALG_SHA256,
        pcrs: expected.keys().copied().collect(),
    }]);
    let got_sel = selection_text(&attest.selection);
    v.check("tpm.pcr_selection", &want_sel, &got_sel);
    let mut h = Sha256::new();
    for value in expected.values() {
        h.update(value);
    }
    let want_digest = h.finalize();
    v.check("tpm.pcr_digest", Hex(&want_digest), Hex(attest.pcr_digest));
    v
}

/// `sha256:4,11` (banks separated by `;`, empty banks included).
fn selection_text(sel: &[PcrSelection]) -> String {
    let banks: Vec<String> = sel
        .iter()
        .map(|s| {
            let pcrs: Vec<String> = s.pcrs.iter().map(|p| format!("{p}")).collect();
            format!("{}:{}", hash_name(s.hash), pcrs.join(","))
        })
        .collect();
    banks.join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_left_padded_and_bounded() {
        let one = scalar32(&[1]).unwrap();
        assert_eq!((one[..31].to_vec(), one[31]), (alloc::vec![0u8; 31], 1));
        assert!(scalar32(&[1u8; 33]).is_none());
        assert_eq!(scalar32(&[0u8; 33]), Some([0u8; 32]));
    }

    #[test]
    fn truncated_and_trailing_bytes_are_errors() {
        assert_eq!(Attest::parse(&[]), Err(ParseError::Truncated("magic")));
        assert_eq!(
            Attest::parse(&[0xff, 0x54, 0x43, 0x47, 0x80, 0x17]),
            Err(ParseError::NotAQuote(0x8017))
        );
        assert_eq!(
            Signature::parse(&[0, 0x18, 0, 0x0b, 0, 1, 5, 0, 1, 6, 9]),
            Err(ParseError::Trailing(1))
        );
    }
}
