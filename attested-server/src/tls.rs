//! The server's TLS identity: a P-256 key made at start, in the guest, and a self-signed
//! certificate around it.
//!
//! The key never leaves the process. Clients do not trust the certificate through any PKI:
//! they trust the key because the attestation evidence binds it
//! ([`verifier::binding::report_data`] over its SubjectPublicKeyInfo), so the certificate's
//! names and validity carry no meaning (rcgen's fixed defaults, no clock read).

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Why a TLS identity or configuration could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Generating the key or signing the certificate failed.
    #[error("generating the TLS key and certificate")]
    Generate(#[source] rcgen::Error),
    /// rustls refused the key, the certificate or the protocol versions.
    #[error("configuring rustls with the generated key")]
    Config(#[source] rustls::Error),
}

/// The key pair the server authenticates with, and the certificate it presents.
pub struct TlsIdentity {
    cert_der: CertificateDer<'static>,
    key_pkcs8: Vec<u8>,
    spki_der: Vec<u8>,
}

impl TlsIdentity {
    /// A fresh ECDSA P-256 key (ring's system random) and a self-signed certificate for it.
    pub fn generate() -> Result<Self, TlsError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(TlsError::Generate)?;
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .map_err(TlsError::Generate)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            "enclave-builder attested server (key bound by attestation)",
        );
        let cert = params.self_signed(&key).map_err(TlsError::Generate)?;
        Ok(Self {
            cert_der: cert.der().clone(),
            key_pkcs8: key.serialize_der(),
            spki_der: rcgen::PublicKeyData::subject_public_key_info(&key),
        })
    }

    /// The certificate (DER) the server presents.
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The public key's SubjectPublicKeyInfo (DER): what the binding hashes.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// A rustls server configuration (ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`)
    /// presenting this certificate.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert_der.clone()], key)
            .map_err(TlsError::Config)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl std::fmt::Debug for TlsIdentity {
    /// Shows the public half only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("spki_der", &hex::encode(&self.spki_der))
            .finish_non_exhaustive()
    }
}
