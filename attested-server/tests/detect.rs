//! `detect`: which evidence source a machine gets, on stand-in configfs entries and devices
//! (a real TSM provider needs SEV-SNP or TDX hardware; the QEMU boot in reproducibility-tests
//! shows the vTPM path on a real guest kernel, where the TSM interface has no provider).

use std::path::Path;

use attested_server::{detect, EvidenceError};

#[test]
fn a_tsm_entry_with_a_provider_wins() {
    let dir = tempfile::tempdir().unwrap();
    let entry = dir.path().join("workload");
    fs_err::create_dir(&entry).unwrap();
    fs_err::write(entry.join("inblob"), b"").unwrap();
    fs_err::write(entry.join("provider"), b"sev_guest\n").unwrap();
    let tpm = dir.path().join("tpmrm0");
    fs_err::write(&tpm, b"").unwrap();
    let got = detect(&[&entry], &tpm);
    assert_eq!(
        got.description,
        format!("configfs TSM (sev_guest) at {}", entry.display())
    );
}

#[test]
fn without_a_provider_the_tpm_is_used_and_the_probe_entry_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    // A report directory (no inblob): the probe makes an entry, finds no provider in it.
    let reports = dir.path().join("report");
    fs_err::create_dir(&reports).unwrap();
    let tpm = dir.path().join("tpmrm0");
    fs_err::write(&tpm, b"").unwrap();
    let got = detect(&[Path::new("/nonexistent/tsm"), &reports], &tpm);
    assert_eq!(got.description, format!("vTPM at {}", tpm.display()));
    assert_eq!(
        fs_err::read_dir(&reports).unwrap().count(),
        0,
        "probe entry left behind"
    );
}

#[test]
fn with_neither_evidence_is_refused_and_the_reason_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let tpm = dir.path().join("tpmrm0");
    let got = detect(&[], &tpm);
    assert_eq!(
        got.description,
        format!("none (no TSM provider, no TPM device at {})", tpm.display())
    );
    assert!(matches!(
        got.source.evidence(&[0; 64]),
        Err(EvidenceError::Unavailable(_))
    ));
    // A TPM path that cannot be opened read-write (here a directory) is named with its error.
    fs_err::create_dir(&tpm).unwrap();
    let got = detect(&[], &tpm);
    assert!(
        got.description.starts_with("none (no TSM provider; ")
            && got.description.contains("opening the TPM device"),
        "{}",
        got.description
    );
}
