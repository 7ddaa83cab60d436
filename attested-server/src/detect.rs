//! Which evidence this machine can give, decided once at start: the TEE's own report through
//! the kernel's configfs TSM interface when a provider is registered (SEV-SNP, TDX), else a
//! quote from the TPM device (a vTPM), else none (the attestation endpoint answers 503).

use std::path::Path;
use std::sync::Arc;

use crate::evidence::{ConfigfsTsm, EvidenceSource, NoEvidence};
use crate::vtpm::VtpmQuote;

/// The chosen source and a line for the server's log saying which and why.
pub struct Detected {
    /// Where evidence comes from.
    pub source: Arc<dyn EvidenceSource>,
    /// What was chosen, e.g. `configfs TSM (sev_guest) at /sys/...` or `vTPM at /dev/tpmrm0`.
    pub description: String,
}

impl std::fmt::Debug for Detected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detected")
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

/// Tries each configfs TSM report root in `tsm_roots` (an entry handed to this process, or
/// the report directory), then the TPM device `tpm`. A TSM root counts only with a provider;
/// a TPM device that exists but cannot be opened is named in the description, and none is
/// used (evidence from the wrong source would only be refused later).
pub fn detect(tsm_roots: &[&Path], tpm: &Path) -> Detected {
    for root in tsm_roots {
        if let Some(tsm) = ConfigfsTsm::probe(root) {
            if let Some(provider) = tsm.provider() {
                return Detected {
                    source: Arc::new(tsm),
                    description: format!("configfs TSM ({provider}) at {}", root.display()),
                };
            }
        }
    }
    let none = |why: String| Detected {
        source: Arc::new(NoEvidence),
        description: format!("none ({why})"),
    };
    if !tpm.exists() {
        return none(format!(
            "no TSM provider, no TPM device at {}",
            tpm.display()
        ));
    }
    match VtpmQuote::open(tpm) {
        Ok(quote) => Detected {
            source: Arc::new(quote),
            description: format!("vTPM at {}", tpm.display()),
        },
        Err(e) => none(format!("no TSM provider; {e}: {}", error_chain(&e))),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut next = e.source();
    while let Some(s) = next {
        out.push(s.to_string());
        next = s.source();
    }
    out.join(": ")
}
