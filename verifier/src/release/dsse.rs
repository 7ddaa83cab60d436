//! DSSE envelopes (Dead Simple Signing Envelope, secure-systems-lab/dsse `envelope.md`):
//! the pre-authentication encoding that is signed, and the JSON envelope that carries it.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::keys::{Fingerprint, PublicKey};

/// The payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The DSSE v1 pre-authentication encoding, the bytes that are signed:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths as ASCII decimal.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(format!("{} ", payload_type.len()).as_bytes());
    out.extend_from_slice(payload_type.as_bytes());
    out.extend_from_slice(format!(" {} ", payload.len()).as_bytes());
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope as JSON: `payload` and `sig` are base64 (standard alphabet, padded, as
/// this crate writes; URL-safe and unpadded are accepted on reading, as the spec allows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The serialized body, base64.
    pub payload: String,
    /// How to interpret the payload ([`PAYLOAD_TYPE`]).
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// One or more signatures over [`pae`]`(payloadType, payload)`.
    pub signatures: Vec<Signature>,
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The signing key's fingerprint in hex (a hint: only the signature decides).
    #[serde(default)]
    pub keyid: String,
    /// The signature, base64: Ed25519's 64 bytes, or ECDSA P-256's DER.
    pub sig: String,
}

/// Why an envelope could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Not a JSON DSSE envelope (`payload`, `payloadType`, `signatures`).
    Json(String),
    /// `payload` is not base64.
    PayloadBase64,
    /// `payloadType` is not [`PAYLOAD_TYPE`].
    PayloadType(String),
    /// The envelope has no signature.
    Unsigned,
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::Json(e) => write!(f, "not a DSSE envelope: {e}"),
            EnvelopeError::PayloadBase64 => f.write_str("the envelope's payload is not base64"),
            EnvelopeError::PayloadType(t) => {
                write!(f, "payloadType is {t:?}, expected {PAYLOAD_TYPE:?}")
            }
            EnvelopeError::Unsigned => f.write_str("the envelope has no signatures"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EnvelopeError {}

/// A signing key for [`Envelope::sign`]: its fingerprint, and a function from the PAE bytes
/// to the signature bytes.
pub type Signer<'a> = (Fingerprint, &'a dyn Fn(&[u8]) -> Vec<u8>);

/// What happened to each signature of an envelope, against a set of keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignatureReport {
    /// The keys (of those offered) that made a valid signature, without repeats.
    pub verified: Vec<Fingerprint>,
    /// The signatures that did not verify under any offered key, each with the reason.
    pub rejected: Vec<String>,
}

impl Envelope {
    /// Parses an envelope and checks its payload type; signatures are checked by
    /// [`Envelope::verify`].
    pub fn parse(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        let env: Envelope =
            serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Json(format!("{e}")))?;
        if env.payload_type != PAYLOAD_TYPE {
            return Err(EnvelopeError::PayloadType(env.payload_type));
        }
        if env.signatures.is_empty() {
            return Err(EnvelopeError::Unsigned);
        }
        Ok(env)
    }

    /// Signs `payload` with each signer (a fingerprint and a function from the PAE bytes to
    /// the signature bytes) into an envelope.
    pub fn sign(payload_type: &str, payload: &[u8], signers: &[Signer<'_>]) -> Envelope {
        let b64 = base64::engine::general_purpose::STANDARD;
        let message = pae(payload_type, payload);
        Envelope {
            payload: b64.encode(payload),
            payload_type: payload_type.into(),
            signatures: signers
                .iter()
                .map(|(fp, sign)| Signature {
                    keyid: fp.hex(),
                    sig: b64.encode(sign(&message)),
                })
                .collect(),
        }
    }

    /// The decoded payload.
    pub fn payload(&self) -> Result<Vec<u8>, EnvelopeError> {
        decode_b64(&self.payload).ok_or(EnvelopeError::PayloadBase64)
    }

    /// Checks every signature against `keys`. A signature whose `keyid` names one of the
    /// keys is checked with that key only; one without a `keyid` is tried with each key.
    pub fn verify(&self, keys: &[PublicKey]) -> SignatureReport {
        let mut report = SignatureReport::default();
        let Ok(payload) = self.payload() else {
            report
                .rejected
                .push(String::from("the payload is not base64"));
            return report;
        };
        let message = pae(&self.payload_type, &payload);
        for (i, s) in self.signatures.iter().enumerate() {
            let who = if s.keyid.is_empty() {
                format!("signature {i} (no keyid)")
            } else {
                format!("signature {i} by sha256:{}", s.keyid)
            };
            let Some(sig) = decode_b64(&s.sig) else {
                report.rejected.push(format!("{who}: not base64"));
                continue;
            };
            let candidates: Vec<&PublicKey> = keys
                .iter()
                .filter(|k| {
                    s.keyid.is_empty() || k.fingerprint().hex() == s.keyid.to_ascii_lowercase()
                })
                .collect();
            if candidates.is_empty() {
                report.rejected.push(format!("{who}: not a trusted key"));
                continue;
            }
            match candidates.iter().find(|k| k.verify(&message, &sig)) {
                Some(k) => {
                    if !report.verified.contains(&k.fingerprint()) {
                        report.verified.push(k.fingerprint());
                    }
                }
                None => report.rejected.push(format!(
                    "{who}: does not verify (corrupted, or over other bytes)"
                )),
            }
        }
        report
    }
}

/// Base64, standard or URL-safe alphabet, padded or not (DSSE allows both).
fn decode_b64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    STANDARD
        .decode(s)
        .or_else(|_| lenient.decode(s))
        .or_else(|_| URL_SAFE.decode(s))
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        .ok()
}
