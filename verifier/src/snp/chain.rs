//! The AMD certificate chain: ARK (root, self-signed) → ASK → VCEK → report.
//!
//! ARK and ASK are pinned per product ([`TrustAnchors::amd`]: AMD's public KDS certificates
//! for Milan, Genoa and Turin, committed under `src/snp/amd/` with their source). The VCEK is
//! per chip and per TCB and is passed in by the caller (DER or PEM), as are, optionally, the
//! ARK and ASK the host served: those must be byte-identical to the pinned ones.
//!
//! All three certificates are signed with RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48. The
//! verifier has no clock: validity periods are not checked, and neither is revocation (the
//! caller may pass a CRL-checked VCEK).

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use der::asn1::{Int, OctetString};
use der::{Decode, DecodePem, Encode};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::signature::Verifier as _;
use x509_cert::Certificate;

/// The AMD processor generation a chain belongs to; it also fixes the TCB layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    /// EPYC 7003 (Zen 3).
    Milan,
    /// EPYC 9004 (Zen 4).
    Genoa,
    /// EPYC 9005 (Zen 5): another TCB layout (an FMC SPL) and an 8-byte hwID.
    Turin,
}

impl Product {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Milan => "milan",
            Self::Genoa => "genoa",
            Self::Turin => "turin",
        }
    }
}

/// One product's pinned root and intermediate, DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchor {
    /// The product (fixes the TCB layout).
    pub product: Product,
    /// The AMD Root Key certificate, DER.
    pub ark: Vec<u8>,
    /// The AMD SEV Key certificate, DER.
    pub ask: Vec<u8>,
}

/// The roots a verifier accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchors {
    anchors: Vec<TrustAnchor>,
}

/// A certificate that is neither DER nor PEM X.509.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertError {
    /// Which certificate (`vcek`, `ark`, ...).
    pub which: &'static str,
    /// The decoder's message.
    pub reason: String,
}

impl core::fmt::Display for CertError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "the {} certificate is not X.509 (DER or PEM): {}",
            self.which, self.reason
        )
    }
}

impl core::error::Error for CertError {}

impl TrustAnchors {
    /// AMD's ARK and ASK for Milan, Genoa and Turin, as published by the AMD Key
    /// Distribution Service (`src/snp/amd/README.md` names the source).
    pub fn amd() -> Self {
        let pem = |p: &str| {
            // The pinned files are checked by `tests::pinned_certificates_parse`; a build
            // whose pins do not parse must not verify anything, so this fails closed by
            // leaving the anchor out rather than panicking.
            Certificate::from_pem(p).ok().and_then(|c| c.to_der().ok())
        };
        let mut anchors = Vec::new();
        for (product, ark, ask) in [
            (
                Product::Milan,
                include_str!("amd/milan-ark.pem"),
                include_str!("amd/milan-ask.pem"),
            ),
            (
                Product::Genoa,
                include_str!("amd/genoa-ark.pem"),
                include_str!("amd/genoa-ask.pem"),
            ),
            (
                Product::Turin,
                include_str!("amd/turin-ark.pem"),
                include_str!("amd/turin-ask.pem"),
            ),
        ] {
            if let (Some(ark), Some(ask)) = (pem(ark), pem(ask)) {
                anchors.push(TrustAnchor { product, ark, ask });
            }
        }
        Self { anchors }
    }

    /// Other anchors (a test chain, a future product). Each certificate DER or PEM.
    pub fn new(anchors: impl IntoIterator<Item = TrustAnchor>) -> Result<Self, CertError> {
        let mut out = Vec::new();
        for a in anchors {
            out.push(TrustAnchor {
                product: a.product,
                ark: parse_cert("ark", &a.ark)?
                    .to_der()
                    .map_err(|e| der_err("ark", e))?,
                ask: parse_cert("ask", &a.ask)?
                    .to_der()
                    .map_err(|e| der_err("ask", e))?,
            });
        }
        Ok(Self { anchors: out })
    }

    /// The pinned anchors.
    pub fn anchors(&self) -> &[TrustAnchor] {
        &self.anchors
    }
}

fn der_err(which: &'static str, e: der::Error) -> CertError {
    CertError {
        which,
        reason: e.to_string(),
    }
}

/// Parses one certificate, DER or PEM.
pub(crate) fn parse_cert(which: &'static str, bytes: &[u8]) -> Result<Certificate, CertError> {
    let trimmed = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .and_then(|start| bytes.get(start..))
        .unwrap_or(&[]);
    if trimmed.starts_with(b"-----BEGIN") {
        let text = core::str::from_utf8(trimmed).map_err(|e| CertError {
            which,
            reason: e.to_string(),
        })?;
        Certificate::from_pem(text).map_err(|e| der_err(which, e))
    } else {
        Certificate::from_der(bytes).map_err(|e| der_err(which, e))
    }
}

/// A certificate (DER or PEM) re-encoded as DER, for comparison with a pinned one.
pub(crate) fn canonical_der(which: &'static str, bytes: &[u8]) -> Result<Vec<u8>, String> {
    parse_cert(which, bytes)
        .and_then(|c| c.to_der().map_err(|e| der_err(which, e)))
        .map_err(|e| e.to_string())
}

/// `id-RSASSA-PSS` (RFC 4055).
const RSASSA_PSS: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");

/// Whether `issuer`'s RSA key signed `cert` with RSASSA-PSS SHA-384 (salt 48).
pub(crate) fn rsa_pss_signed_by(cert: &Certificate, issuer: &Certificate) -> Result<(), String> {
    if cert.signature_algorithm.oid != RSASSA_PSS {
        return Err(alloc::format!(
            "signature algorithm {} is not RSASSA-PSS",
            cert.signature_algorithm.oid
        ));
    }
    let key_bits = issuer
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .as_bytes()
        .ok_or("issuer key is not a whole number of bytes")?;
    let key = rsa::RsaPublicKey::from_pkcs1_der(key_bits)
        .map_err(|e| alloc::format!("issuer key is not RSA: {e}"))?;
    let tbs = cert
        .tbs_certificate
        .to_der()
        .map_err(|e| alloc::format!("re-encoding the signed part: {e}"))?;
    let sig_bytes = cert
        .signature
        .as_bytes()
        .ok_or("signature is not a whole number of bytes")?;
    let sig =
        rsa::pss::Signature::try_from(sig_bytes).map_err(|e| alloc::format!("signature: {e}"))?;
    rsa::pss::VerifyingKey::<sha2::Sha384>::new(key)
        .verify(&tbs, &sig)
        .map_err(|_| "RSASSA-PSS SHA-384 signature does not verify".to_string())
}

/// The VCEK's P-384 public key.
pub(crate) fn p384_key(cert: &Certificate) -> Result<p384::ecdsa::VerifyingKey, String> {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or("VCEK key is not a whole number of bytes")?;
    p384::ecdsa::VerifyingKey::from_sec1_bytes(bits)
        .map_err(|_| "VCEK key is not a P-384 point".to_string())
}

/// AMD's VCEK extension arc `1.3.6.1.4.1.3704.1`.
const AMD_ARC: &str = "1.3.6.1.4.1.3704.1.";

/// The raw `extnValue` of the AMD extension `1.3.6.1.4.1.3704.1.<suffix>`.
pub(crate) fn amd_extension<'c>(cert: &'c Certificate, suffix: &str) -> Option<&'c [u8]> {
    let exts = cert.tbs_certificate.extensions.as_ref()?;
    exts.iter()
        .find(|e| {
            let oid = e.extn_id.to_string();
            oid.strip_prefix(AMD_ARC) == Some(suffix)
        })
        .map(|e| e.extn_value.as_bytes())
}

/// A security patch level from a VCEK extension (a DER INTEGER 0..=255).
pub(crate) fn spl(cert: &Certificate, suffix: &str) -> Option<u8> {
    let v = Int::from_der(amd_extension(cert, suffix)?).ok()?;
    match v.as_bytes() {
        [b] => Some(*b),
        [0, b] => Some(*b),
        _ => None,
    }
}

/// The VCEK's hardware ID (`1.3.6.1.4.1.3704.1.4`): an OCTET STRING, or raw bytes.
pub(crate) fn hwid(cert: &Certificate) -> Option<Vec<u8>> {
    let raw = amd_extension(cert, "4")?;
    match OctetString::from_der(raw) {
        Ok(o) => Some(o.as_bytes().to_vec()),
        Err(_) => Some(raw.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_certificates_parse_and_are_self_consistent() {
        let anchors = TrustAnchors::amd();
        assert_eq!(anchors.anchors().len(), 3);
        for a in anchors.anchors() {
            let ark = Certificate::from_der(&a.ark).unwrap();
            let ask = Certificate::from_der(&a.ask).unwrap();
            rsa_pss_signed_by(&ark, &ark).unwrap();
            rsa_pss_signed_by(&ask, &ark).unwrap();
            assert!(rsa_pss_signed_by(&ark, &ask).is_err());
        }
    }
}
