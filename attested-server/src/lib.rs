//! The guest's HTTPS front, and the client that checks it before it sends anything.
//!
//! Server: [`TlsIdentity::generate`] makes the TLS key in the guest at start;
//! [`Server::new`] puts it behind hyper + rustls (ring) with the bounds of [`Limits`]; the
//! server answers `GET /healthz`, `GET /v1/attestation?nonce=HEX` (an [`AttestationDoc`] whose
//! evidence, from an [`EvidenceSource`] such as [`ConfigfsTsm`] or [`VtpmQuote`] (TPM 2.0
//! commands in [`tpm2`]), carries
//! [`verifier::binding::report_data`] of the TLS key and the nonce) and hands every other
//! request, body read in full, to an [`App`]. [`detect`] picks the source a machine has.
//!
//! Client ([`client`]): [`client::attest`] fetches evidence for a fresh nonce, checks it
//! against a release's `record.json` with the `verifier` crate and against the key the TLS
//! handshake presented; [`client::attested_request`] then sends the real request over a
//! connection pinned to that key.
//!
//! ```
//! let id = attested_server::TlsIdentity::generate().unwrap();
//! // The binding the evidence must carry for this key and a client's nonce.
//! let binding = verifier::binding::report_data(id.spki_der(), &[7; 32]);
//! assert_eq!(binding.len(), 64);
//! assert_eq!(verifier::binding::server_key_der(id.certificate_der()).as_deref(), Some(id.spki_der()));
//! ```

pub mod client;
mod detect;
mod evidence;
mod server;
mod tls;
pub mod tpm2;
mod vtpm;

pub use detect::{detect, Detected};
pub use evidence::{
    snp_cert_table, ConfigfsTsm, Evidence, EvidenceError, EvidenceSource, NoEvidence, Platform,
};
pub use server::{App, AttestationDoc, Limits, Reply, ServeError, Server, NONCE_LEN};
pub use tls::{TlsError, TlsIdentity};
pub use vtpm::{VtpmQuote, TPM_AK, TPM_SIGNATURE};
