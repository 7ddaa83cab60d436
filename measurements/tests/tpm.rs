//! vTPM: PCR 11 against `systemd-measure calculate` (systemd 252), Authenticode against the
//! digest in Debian's kernel signature and against osslsigncode (SHA-384), a real UKI built with
//! objcopy from the systemd 257 stub, PCR 4; malformed PE gives typed errors, never panics.

use std::path::Path;
use std::process::Command;

use measurements::tpm::{
    authenticode, pcr11, pcr4_events, replay, uki_pcr11, uki_sections, Bank, PeError, PeFile,
    StubVersion, UkiSection,
};
use measurements::{Sha256Digest, Sha384Digest};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

use crate::util::{
    debian_kernel, fixture, osslsigncode_digest, run, scratch, signature_digest, systemd_measure,
};

fn phases_of<D: Bank>(reference: &serde_json::Value) -> Vec<String> {
    reference[D::NAME]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["hash"].as_str().unwrap().to_owned())
        .collect()
}

fn ours<D: Bank>(p: &measurements::tpm::Pcr11<D>) -> Vec<String> {
    p.phases.iter().map(|(_, d)| d.to_string()).collect()
}

struct Sections {
    files: Vec<(UkiSection, &'static str, std::path::PathBuf, Vec<u8>)>,
}

fn sections(dir: &Path, with_initrd: bool) -> Sections {
    let kernel = debian_kernel().to_path_buf();
    let mut files = vec![(
        UkiSection::Linux,
        "linux",
        kernel.clone(),
        fs_err::read(&kernel).unwrap(),
    )];
    let mut add = |kind, flag, name: &str, data: Vec<u8>| {
        let p = dir.join(name);
        fs_err::write(&p, &data).unwrap();
        files.push((kind, flag, p, data));
    };
    add(
        UkiSection::Osrel,
        "osrel",
        "osrel",
        b"ID=enclave\nVERSION_ID=1\n".to_vec(),
    );
    add(
        UkiSection::Cmdline,
        "cmdline",
        "cmdline",
        b"console=ttyS0 root=/dev/vda1 ro".to_vec(),
    );
    if with_initrd {
        add(
            UkiSection::Initrd,
            "initrd",
            "initrd",
            (0..70_001u32).map(|i| (i % 253) as u8).collect(),
        );
    }
    Sections { files }
}

impl Sections {
    fn reference(&self) -> serde_json::Value {
        let args: Vec<(&str, &Path)> = self
            .files
            .iter()
            .map(|(_, f, p, _)| (*f, p.as_path()))
            .collect();
        systemd_measure(&args)
    }
    fn payloads(&self) -> Vec<(UkiSection, &[u8])> {
        // Reverse to show that the caller's order does not matter.
        self.files
            .iter()
            .rev()
            .map(|(k, _, _, d)| (*k, d.as_slice()))
            .collect()
    }
}

#[test]
fn pcr11_matches_systemd_measure_both_banks_every_phase() {
    for with_initrd in [false, true] {
        let dir = scratch(&format!("pcr11-{with_initrd}"));
        let s = sections(&dir, with_initrd);
        let reference = s.reference();
        let p256 = pcr11::<Sha256Digest>(&s.payloads(), StubVersion::Systemd252).unwrap();
        let p384 = pcr11::<Sha384Digest>(&s.payloads(), StubVersion::Systemd252).unwrap();
        assert_eq!(
            ours(&p256),
            phases_of::<Sha256Digest>(&reference),
            "sha256, initrd={with_initrd}"
        );
        assert_eq!(
            ours(&p384),
            phases_of::<Sha384Digest>(&reference),
            "sha384, initrd={with_initrd}"
        );
        assert_eq!(p256.events.len(), 2 * s.files.len());
    }
}

#[test]
fn authenticode_sha256_equals_debian_signature_digest() {
    let kernel_path = debian_kernel();
    let kernel = fs_err::read(kernel_path).unwrap();
    // The digest Debian's signing service put in the SpcIndirectDataContent.
    let out = Command::new("osslsigncode")
        .arg("verify")
        .arg("-in")
        .arg(kernel_path)
        .output()
        .unwrap();
    let signed = signature_digest(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        authenticode::<Sha256Digest>(&kernel).unwrap().to_hex(),
        signed
    );
    assert_eq!(
        signed, "5f21ff2c0d5d899842b28a8b19901ba72cf7a7ab93c02a77fadc6ff72be85b31",
        "fixture changed?"
    );
}

#[test]
fn authenticode_sha384_equals_osslsigncode() {
    let dir = scratch("auth384");
    let kernel_path = debian_kernel();
    let kernel = fs_err::read(kernel_path).unwrap();
    assert_eq!(
        authenticode::<Sha384Digest>(&kernel).unwrap().to_hex(),
        osslsigncode_digest(kernel_path, "sha384", &dir)
    );
}

/// Builds a UKI from the systemd 257 stub with objcopy, like `ukify`/the systemd docs do.
fn build_uki(dir: &Path, s: &Sections) -> std::path::PathBuf {
    let uki = dir.join("uki.efi");
    let mut cmd = Command::new("objcopy");
    // The stub's sections end below ImageBase + 0x20000; space ours 16 MiB apart.
    let mut vma: u64 = 0x1_4e00_0000;
    for (kind, _, path, _) in &s.files {
        let name = kind.name();
        cmd.arg("--add-section")
            .arg(format!("{name}={}", path.display()));
        cmd.arg("--change-section-vma")
            .arg(format!("{name}={vma:#x}"));
        vma += 0x0100_0000;
    }
    cmd.arg(fixture("uki/linuxx64.efi.stub-257.13")).arg(&uki);
    run(&mut cmd);
    uki
}

#[test]
fn uki_sections_extracted_from_real_uki_match_systemd_measure() {
    let dir = scratch("uki");
    let s = sections(&dir, true);
    let uki_path = build_uki(&dir, &s);
    let uki = fs_err::read(&uki_path).unwrap();
    let reference = s.reference();
    // systemd 252 ignores the stub's own .sbat; systemd-measure 252 is the same version.
    let p256 = uki_pcr11::<Sha256Digest>(&uki, StubVersion::Systemd252).unwrap();
    let p384 = uki_pcr11::<Sha384Digest>(&uki, StubVersion::Systemd252).unwrap();
    assert_eq!(ours(&p256), phases_of::<Sha256Digest>(&reference));
    assert_eq!(ours(&p384), phases_of::<Sha384Digest>(&reference));
    // The 257 stub also measures its .sbat, so the values differ.
    let p257 = uki_pcr11::<Sha256Digest>(&uki, StubVersion::Systemd257).unwrap();
    assert_ne!(p257.after_stub, p256.after_stub);
    assert_eq!(p257.events.len(), p256.events.len() + 2);

    // PCR 4: action, separator, UKI, inner kernel — with Authenticode digests from osslsigncode.
    // systemd-stub hands `LoadImage` the `.linux` payload as loaded (VirtualSize bytes).
    let pe = PeFile::parse(&uki).unwrap();
    let linux_payload = uki_sections(&pe)
        .into_iter()
        .find(|(k, _)| *k == UkiSection::Linux)
        .unwrap()
        .1;
    assert_eq!(&*linux_payload, &fs_err::read(debian_kernel()).unwrap()[..]);
    let linux: &[u8] = &linux_payload;
    assert_eq!(
        authenticode::<Sha256Digest>(&uki).unwrap().to_hex(),
        osslsigncode_digest(&uki_path, "sha256", &dir)
    );
    let uki_auth = osslsigncode_digest(&uki_path, "sha256", &dir);
    let kernel_auth = osslsigncode_digest(debian_kernel(), "sha256", &dir);
    let h = |d: &[u8]| -> [u8; 32] { Sha256::digest(d).into() };
    let mut want = [0u8; 32];
    for d in [
        h(b"Calling EFI Application from Boot Option"),
        h(&[0; 4]),
        hex::decode(&uki_auth).unwrap().try_into().unwrap(),
        hex::decode(&kernel_auth).unwrap().try_into().unwrap(),
    ] {
        want = h(&[want, d].concat());
    }
    let events = pcr4_events::<Sha256Digest>(&[("uki", &uki), ("linux", linux)]).unwrap();
    assert_eq!(replay(&events).to_hex(), hex::encode(want));
}

#[test]
fn malformed_pe_gives_typed_errors() {
    let kernel = fs_err::read(debian_kernel()).unwrap();
    assert_eq!(
        authenticode::<Sha256Digest>(b"").unwrap_err(),
        PeError::Truncated {
            field: "MZ signature",
            offset: 0,
            len: 0
        }
    );
    assert_eq!(
        authenticode::<Sha256Digest>(b"ELF\0").unwrap_err(),
        PeError::NoDosSignature
    );
    let mut bad = kernel.clone();
    bad[0x3c..0x40].copy_from_slice(&0x10u32.to_le_bytes());
    assert!(matches!(
        authenticode::<Sha256Digest>(&bad),
        Err(PeError::NoPeSignature { offset: 0x10 })
    ));
    // Truncate the file inside the section data.
    assert!(matches!(
        authenticode::<Sha256Digest>(&kernel[..kernel.len() / 2]),
        Err(PeError::SectionOutOfFile { .. } | PeError::CertificateTable { .. })
    ));
    // Duplicate section for PCR 11.
    let dup = [
        (UkiSection::Osrel, &b"a"[..]),
        (UkiSection::Osrel, &b"b"[..]),
    ];
    assert!(pcr11::<Sha256Digest>(&dup, StubVersion::Systemd252).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn pe_parse_never_panics_on_random_bytes(mut bytes in proptest::collection::vec(any::<u8>(), 0..2048), lfanew in 0u32..2048) {
        // Give half the inputs a plausible DOS header so the deeper parser is reached.
        if bytes.len() > 0x40 && lfanew % 2 == 0 {
            bytes[0..2].copy_from_slice(b"MZ");
            bytes[0x3c..0x40].copy_from_slice(&(lfanew / 2).to_le_bytes());
            let at = (lfanew / 2) as usize;
            if at + 4 <= bytes.len() { bytes[at..at + 4].copy_from_slice(b"PE\0\0"); }
        }
        let _ = authenticode::<Sha256Digest>(&bytes);
        let _ = uki_pcr11::<Sha384Digest>(&bytes, StubVersion::Systemd257);
    }

    #[test]
    fn pe_parse_never_panics_on_mutated_headers(edits in proptest::collection::vec((0usize..0x400, any::<u8>()), 1..6), cut in 0usize..0x4000) {
        let stub = fs_err::read(fixture("uki/linuxx64.efi.stub-257.13")).unwrap();
        let mut pe = stub.clone();
        for (at, v) in edits { pe[at] = v; }
        let _ = authenticode::<Sha384Digest>(&pe[..pe.len().saturating_sub(cut)]);
        let _ = uki_pcr11::<Sha256Digest>(&pe, StubVersion::Systemd257);
    }
}
