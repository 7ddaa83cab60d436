//! The session binding: what the guest puts in the attestation's user-data field so that the
//! evidence speaks for *this* connection, not a replayed one.
//!
//! One convention, for every platform:
//!
//! ```text
//! binding = SHA-512( "enclave-builder attestation v1" 0x00
//!                    || SHA-256(server public key, SubjectPublicKeyInfo DER)
//!                    || client nonce )
//! ```
//!
//! - The context string (31 bytes with its NUL) separates this use from any other hash.
//! - The server key is the key the client's TLS (or other) channel authenticates; hashing
//!   its SPKI DER names it independently of the certificate around it.
//! - The nonce is the client's fresh random challenge, any length (at least 16 bytes is
//!   advised); it is last, so the fixed-length prefix makes the encoding unambiguous.
//!
//! Where it goes:
//!
//! | platform | field | value |
//! |---|---|---|
//! | SEV-SNP | `REPORT_DATA` (64 bytes) | the 64-byte binding |
//! | TDX | `REPORTDATA` (64 bytes) | the 64-byte binding |
//! | vTPM | `extraData` / qualifying data of `TPM2_Quote` (at most the name-algorithm size) | the first 32 bytes of the binding ([`tpm_qualifying_data`]) |
//!
//! Changing the context string, the hash or the order breaks every deployed client; a new
//! convention gets a new context string (`v2`).
//!
//! ```
//! let b = verifier::binding::report_data(b"spki", b"nonce");
//! assert_eq!(verifier::binding::tpm_qualifying_data(&b), b[..32]);
//! ```

use alloc::borrow::Cow;
use alloc::vec::Vec;

use sha2::{Digest as _, Sha256, Sha512};

/// The domain-separation prefix, NUL included. Changing it breaks the convention.
pub const CONTEXT: &[u8] = b"enclave-builder attestation v1\0";

/// The 64 bytes the guest puts in `REPORT_DATA` / `REPORTDATA`.
pub fn report_data(server_spki_der: &[u8], nonce: &[u8]) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(CONTEXT);
    h.update(Sha256::digest(server_spki_der));
    h.update(nonce);
    h.finalize().into()
}

/// The DER inside `bytes`: the body of its one PEM block when it starts with `-----BEGIN`
/// (leading white space allowed), else `bytes` as they are; `None` for a malformed PEM block.
pub(crate) fn pem_or_der(bytes: &[u8]) -> Option<Cow<'_, [u8]>> {
    if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        Some(Cow::Owned(der::pem::decode_vec(bytes.trim_ascii()).ok()?.1))
    } else {
        Some(Cow::Borrowed(bytes))
    }
}

/// The SubjectPublicKeyInfo DER of a server key given as an SPKI or an X.509 certificate,
/// each DER or PEM (`PUBLIC KEY`, `CERTIFICATE`); `None` for anything else.
pub fn server_key_der(bytes: &[u8]) -> Option<Vec<u8>> {
    use der::{Decode as _, Encode as _};
    let der = pem_or_der(bytes)?;
    let der: &[u8] = &der;
    if let Ok(cert) = x509_cert::Certificate::from_der(der) {
        return cert.tbs_certificate.subject_public_key_info.to_der().ok();
    }
    x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(der)
        .ok()?
        .to_der()
        .ok()
}

/// The 32 bytes a vTPM quote's qualifying data must hold: the first half of the binding
/// (`TPM2_Quote` limits qualifying data to the size of a digest, 32 for SHA-256 AKs).
pub fn tpm_qualifying_data(binding: &[u8; 64]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&binding[..32]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_is_sha512_of_the_documented_concatenation() {
        // Independent computation with the concatenation spelled out byte by byte.
        let spki = [0x30u8, 0x00];
        let nonce = [7u8; 16];
        let mut msg = alloc::vec::Vec::new();
        msg.extend_from_slice(b"enclave-builder attestation v1");
        msg.push(0);
        msg.extend_from_slice(&Sha256::digest(spki));
        msg.extend_from_slice(&nonce);
        assert_eq!(msg.len(), 31 + 32 + 16);
        let want: [u8; 64] = Sha512::digest(&msg).into();
        assert_eq!(report_data(&spki, &nonce), want);
        assert_ne!(report_data(&spki, &[8u8; 16]), want);
        assert_ne!(report_data(&[0x30, 0x01], &nonce), want);
    }

    #[test]
    fn server_key_from_certificate_or_spki() {
        let cert = include_bytes!("../tests/data/snp/vcek_milan.der");
        let spki = server_key_der(cert).unwrap();
        assert_eq!(spki.first(), Some(&0x30));
        assert_eq!(server_key_der(&spki), Some(spki.clone()));
        assert_eq!(server_key_der(b"not a key"), None);
    }
}
