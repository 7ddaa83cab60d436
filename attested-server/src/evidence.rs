//! Where attestation evidence comes from: an [`EvidenceSource`] turns the 64-byte session
//! binding into platform evidence whose user-data field holds it.
//!
//! - [`ConfigfsTsm`]: the kernel's configfs TSM interface
//!   (`Documentation/ABI/testing/configfs-tsm-report`), which fronts both the SEV-SNP guest
//!   driver (`sev_guest`) and the TDX guest driver (`tdx_guest`): create a report entry,
//!   write `inblob` (the binding), read `outblob` (the report or quote), `auxblob` (SEV-SNP:
//!   the host's certificate table, when it serves one) and `provider`, check `generation`.
//! - [`VtpmQuote`](crate::VtpmQuote): `TPM2_Quote` over `/dev/tpmrm0` (or any byte stream to
//!   a TPM) with the binding's first 32 bytes as qualifying data
//!   ([`verifier::binding::tpm_qualifying_data`]); the signature and the attestation key
//!   travel in `certificates` (`tpm-signature`, `tpm-ak`).
//! - Tests implement the trait with reports they build and sign themselves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The kind of evidence, as the attestation endpoint names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Platform {
    /// An AMD SEV-SNP `ATTESTATION_REPORT` (1184 bytes).
    #[serde(rename = "sev-snp")]
    SevSnp,
    /// An Intel TDX quote (version 4 or 5).
    #[serde(rename = "tdx")]
    Tdx,
    /// A TPM 2.0 quote (`TPMS_ATTEST` followed by its signature).
    #[serde(rename = "tpm")]
    Tpm,
}

/// Evidence for one binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// What kind of evidence `evidence` is.
    pub platform: Platform,
    /// The report or quote, as the platform produced it.
    pub evidence: Vec<u8>,
    /// Certificates the client may need, by name (`vcek`, `ask`, `ark`, `vlek`), DER; for
    /// [`Platform::Tpm`], `tpm-signature` (`TPMT_SIGNATURE`) and `tpm-ak` (the AK's
    /// `SubjectPublicKeyInfo` DER).
    pub certificates: BTreeMap<String, Vec<u8>>,
}

/// Why no evidence could be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// A file of the configfs TSM interface could not be created, written or read.
    #[error("configfs TSM report interface")]
    Io(#[source] std::io::Error),
    /// The report entry's generation changed while we used it: another writer raced us.
    #[error("{path}: generation changed from {before} to {after} (a concurrent writer); retry")]
    Raced {
        /// The entry.
        path: PathBuf,
        /// The generation after writing inblob.
        before: u64,
        /// The generation after reading outblob.
        after: u64,
    },
    /// The TSM provider is not one this server knows.
    #[error("{path}: TSM provider {provider:?} is neither sev_guest nor tdx_guest")]
    UnknownProvider {
        /// The `provider` file.
        path: PathBuf,
        /// What it said.
        provider: String,
    },
    /// The TPM device could not be opened.
    #[error("{}: opening the TPM device", path.display())]
    Device {
        /// The device.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A TPM command failed (the error names the command and the TPM's response code).
    #[error("vTPM quote")]
    Tpm(#[source] crate::tpm2::Tpm2Error),
    /// The source cannot produce evidence here (no TEE, not implemented).
    #[error("no attestation evidence available: {0}")]
    Unavailable(&'static str),
}

/// Produces evidence whose user-data field holds `report_data`.
pub trait EvidenceSource: Send + Sync {
    /// Evidence bound to `report_data` ([`verifier::binding::report_data`]).
    fn evidence(&self, report_data: &[u8; 64]) -> Result<Evidence, EvidenceError>;
}

/// No TEE: every request for evidence fails (the endpoint answers 503).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvidence;

impl EvidenceSource for NoEvidence {
    fn evidence(&self, _report_data: &[u8; 64]) -> Result<Evidence, EvidenceError> {
        Err(EvidenceError::Unavailable(
            "this machine has neither a TSM report provider (SEV-SNP, TDX) nor a TPM",
        ))
    }
}

/// The kernel's configfs TSM report interface (Linux 6.7+, `CONFIG_TSM_REPORTS`).
#[derive(Debug)]
pub struct ConfigfsTsm {
    root: PathBuf,
    /// One report at a time: the entries are per process, but the firmware is one.
    lock: Mutex<()>,
    next: AtomicU64,
}

impl ConfigfsTsm {
    /// Where configfs puts the report interface.
    pub const DEFAULT_ROOT: &'static str = "/sys/kernel/config/tsm/report";

    /// The interface under `root` (the report directory, or one entry in it), if that
    /// directory exists.
    pub fn probe(root: &Path) -> Option<Self> {
        root.is_dir().then(|| Self {
            root: root.to_owned(),
            lock: Mutex::new(()),
            next: AtomicU64::new(0),
        })
    }
}

impl ConfigfsTsm {
    /// The entry the guest's init makes for the workload and hands to its user
    /// (`guest-init`'s `mounts::ATTESTATION`).
    pub const WORKLOAD_ENTRY: &'static str = "/sys/kernel/config/tsm/report/workload";

    /// The provider the kernel registered (`sev_guest`, `tdx_guest`), or `None` when there is
    /// none: the interface exists in every kernel built with it, TEE or not, and reading
    /// `provider` fails (`ENXIO`) without one.
    pub fn provider(&self) -> Option<String> {
        let read = |entry: &Path| {
            fs_err::read_to_string(entry.join("provider"))
                .ok()
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
        };
        if self.root.join("inblob").exists() {
            return read(&self.root);
        }
        let entry = self
            .root
            .join(format!("attested-server-{}-probe", std::process::id()));
        fs_err::create_dir(&entry).ok()?;
        let _removal = RemoveOnDrop(entry.clone());
        read(&entry)
    }
}

impl EvidenceSource for ConfigfsTsm {
    fn evidence(&self, report_data: &[u8; 64]) -> Result<Evidence, EvidenceError> {
        // A poisoned lock only means another report panicked; the entry it used is gone.
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // `root` may be one report entry made for this process (by root, chowned to the
        // workload's user: creating entries in the report directory needs root); otherwise
        // each report gets an entry of its own, removed afterwards.
        let (entry, removal) = if self.root.join("inblob").exists() {
            (self.root.clone(), None)
        } else {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let entry = self
                .root
                .join(format!("attested-server-{}-{n}", std::process::id()));
            fs_err::create_dir(&entry).map_err(EvidenceError::Io)?;
            let removal = RemoveOnDrop(entry.clone());
            (entry, Some(removal))
        };
        fs_err::write(entry.join("inblob"), report_data).map_err(EvidenceError::Io)?;
        let before = generation(&entry)?;
        let outblob = fs_err::read(entry.join("outblob")).map_err(EvidenceError::Io)?;
        // SEV-SNP only, and only when the host serves certificates.
        let auxblob = fs_err::read(entry.join("auxblob")).ok();
        let provider = fs_err::read_to_string(entry.join("provider")).map_err(EvidenceError::Io)?;
        let after = generation(&entry)?;
        drop(removal);
        if before != after {
            return Err(EvidenceError::Raced {
                path: entry,
                before,
                after,
            });
        }
        let platform = match provider.trim() {
            "sev_guest" => Platform::SevSnp,
            "tdx_guest" => Platform::Tdx,
            other => {
                return Err(EvidenceError::UnknownProvider {
                    path: entry.join("provider"),
                    provider: other.to_owned(),
                })
            }
        };
        let certificates = match (platform, auxblob) {
            (Platform::SevSnp, Some(table)) => snp_cert_table(&table),
            _ => BTreeMap::new(),
        };
        Ok(Evidence {
            platform,
            evidence: outblob,
            certificates,
        })
    }
}

fn generation(entry: &Path) -> Result<u64, EvidenceError> {
    let text = fs_err::read_to_string(entry.join("generation")).map_err(EvidenceError::Io)?;
    text.trim().parse().map_err(|_| {
        EvidenceError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{}: not a number: {text:?}",
                entry.join("generation").display()
            ),
        ))
    })
}

/// Removes a configfs report entry when the report is done (or failed).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs_err::remove_dir(&self.0);
    }
}

/// The GHCB certificate table (GHCB specification, "SNP Extended Guest Request"): entries of
/// a 16-byte GUID, a 4-byte offset and a 4-byte length (little-endian, offsets from the
/// table's start), ended by an all-zero entry. Known GUIDs become `vcek`, `vlek`, `ask`,
/// `ark`; unknown ones and entries pointing outside the table are skipped (the verifier
/// checks whatever is passed on, so a wrong certificate fails there, never here).
pub fn snp_cert_table(table: &[u8]) -> BTreeMap<String, Vec<u8>> {
    const KNOWN: [(&str, &str); 4] = [
        ("vcek", "63da758d-e664-4564-adc5-f4b93be8accd"),
        ("vlek", "a8074bc2-a25a-483e-aae6-39c045a0b8a1"),
        ("ask", "4ab7b379-bbac-4fe4-a02f-05aef327c782"),
        ("ark", "c0b406a4-a803-4952-9743-3fb6014cd0ae"),
    ];
    let mut out = BTreeMap::new();
    for entry in table.chunks_exact(24) {
        if entry.iter().all(|&b| b == 0) {
            break;
        }
        let (guid, rest) = entry.split_at(16);
        let word = |i: usize| {
            rest.get(i..i + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_le_bytes)
        };
        let (Some(offset), Some(len)) = (word(0), word(4)) else {
            continue;
        };
        let Some(name) = KNOWN
            .iter()
            .find(|(_, text)| guid_matches(guid, text))
            .map(|(n, _)| *n)
        else {
            continue;
        };
        let start = usize::try_from(offset).ok();
        let end = start
            .zip(usize::try_from(len).ok())
            .and_then(|(s, l)| s.checked_add(l));
        if let Some(cert) = start.zip(end).and_then(|(s, e)| table.get(s..e)) {
            out.insert(name.to_owned(), cert.to_vec());
        }
    }
    out
}

/// Whether 16 GUID bytes spell `text`, either in the order it is written or in the mixed-endian
/// layout of EFI GUIDs (first three groups little-endian).
fn guid_matches(bytes: &[u8], text: &str) -> bool {
    let Ok(plain) = hex::decode(text.replace('-', "")) else {
        return false;
    };
    if plain == bytes {
        return true;
    }
    let mut mixed = plain;
    for group in [0..4, 4..6, 6..8] {
        if let Some(g) = mixed.get_mut(group) {
            g.reverse();
        }
    }
    mixed == bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file protocol only (a plain directory standing in for one configfs entry; the
    /// kernel's side needs SEV-SNP or TDX hardware): inblob written with the binding,
    /// outblob and the certificate table read back, the provider named.
    #[test]
    fn a_prepared_entry_is_used_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path();
        for (name, bytes) in [
            ("inblob", &b""[..]),
            ("outblob", b"REPORT"),
            ("provider", b"sev_guest\n"),
            ("generation", b"3\n"),
        ] {
            fs_err::write(entry.join(name), bytes).unwrap();
        }
        let mut table = hex::decode("63da758de6644564adc5f4b93be8accd").unwrap();
        table.extend_from_slice(&48u32.to_le_bytes());
        table.extend_from_slice(&4u32.to_le_bytes());
        table.extend_from_slice(&[0; 24]);
        table.extend_from_slice(b"VCEK");
        fs_err::write(entry.join("auxblob"), &table).unwrap();
        let tsm = ConfigfsTsm::probe(entry).unwrap();
        let ev = tsm.evidence(&[0xab; 64]).unwrap();
        assert_eq!(fs_err::read(entry.join("inblob")).unwrap(), [0xab; 64]);
        assert_eq!(ev.platform, Platform::SevSnp);
        assert_eq!(ev.evidence, b"REPORT");
        assert_eq!(
            ev.certificates.get("vcek").map(Vec::as_slice),
            Some(&b"VCEK"[..])
        );
        assert!(entry.is_dir(), "a prepared entry is not removed");

        fs_err::write(entry.join("provider"), "arm_cca_guest\n").unwrap();
        let err = tsm.evidence(&[0; 64]).unwrap_err();
        assert!(err.to_string().contains("arm_cca_guest"), "{err}");
        assert!(ConfigfsTsm::probe(&entry.join("missing")).is_none());
    }

    #[test]
    fn cert_table_entries_in_either_guid_layout() {
        // VCEK GUID in written order, ARK GUID in EFI mixed-endian order, one unknown GUID, an
        // entry pointing past the end, then the terminator and the certificates.
        let vcek_guid = hex::decode("63da758de6644564adc5f4b93be8accd").unwrap();
        let ark_guid = hex::decode("a406b4c003a852499743 3fb6014cd0ae".replace(' ', "")).unwrap();
        let mut table = Vec::new();
        let header = 24 * 5;
        for (guid, off, len) in [
            (vcek_guid, header, 3u32),
            (ark_guid, header + 3, 2),
            (vec![0x55; 16], header, 1),
            (
                hex::decode("4ab7b379bbac4fe4a02f05aef327c782").unwrap(),
                9999,
                1,
            ),
        ] {
            table.extend_from_slice(&guid);
            table.extend_from_slice(&u32::try_from(off).unwrap().to_le_bytes());
            table.extend_from_slice(&len.to_le_bytes());
        }
        table.extend_from_slice(&[0; 24]);
        table.extend_from_slice(b"VVVAA");
        let got = snp_cert_table(&table);
        assert_eq!(got.get("vcek").map(Vec::as_slice), Some(&b"VVV"[..]));
        assert_eq!(got.get("ark").map(Vec::as_slice), Some(&b"AA"[..]));
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(snp_cert_table(&[0xff; 7]).is_empty());
    }
}
