//! TDX: MRTD and RTMR2 against `vectors/tdx/tdx_reference.py` (an independent walk-through of
//! the TDVF/TDX-module specs), RTMR1 against osslsigncode's Authenticode SHA-384; malformed
//! firmware gives typed errors, never panics.

use std::process::Command;

use measurements::tdx::{
    mrtd, rtmr1_events, rtmr2_events, PageAddOrder, Rtmr1Order, Tdvf, TdvfError, TdvfSectionType,
};
use measurements::tpm::{replay, Event};
use measurements::{Sha256Digest, Sha384Digest};
use proptest::prelude::*;
use sha2::{Digest, Sha384};

use crate::util::{debian_kernel, fixture, osslsigncode_digest, run, scratch, value_of};

const FW: &str = "firmware/OVMF.inteltdx.ms-2026.08.fd";
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/tdx/tdx_reference.py"
);
const VECTORS: &str = include_str!("vectors/tdx/ovmf-inteltdx.ms-2026.08.toml");
const CMDLINE: &str = "console=ttyS0 root=/dev/vda1 ro";
/// dstack-mr's values for the same firmware, command line and initrd (provenance in the file).
const DSTACK_MR: &str = include_str!("vectors/tdx/dstack-mr.toml");

fn firmware() -> Vec<u8> {
    fs_err::read(fixture(FW)).unwrap()
}

fn reference(args: &[&str]) -> String {
    run(Command::new("python3")
        .arg(SCRIPT)
        .arg(fixture(FW))
        .args(args))
}

/// The reference script's output for [`CMDLINE`] and `initrd`, written to `path` first.
fn reference_with_initrd(path: &std::path::Path, initrd: &[u8]) -> String {
    fs_err::write(path, initrd).unwrap();
    reference(&["--cmdline", CMDLINE, "--initrd", path.to_str().unwrap()])
}

#[test]
fn tdvf_sections_of_the_debian_tdx_build() {
    let fw = firmware();
    let tdvf = Tdvf::parse(&fw).unwrap();
    let kinds: Vec<_> = tdvf
        .sections()
        .iter()
        .map(|s| (s.section_type, s.memory_address, s.mr_extend))
        .collect();
    // As listed by the reference script (`section=` lines) and the fixtures README (6 sections).
    assert_eq!(
        kinds,
        [
            (TdvfSectionType::Bfv, 0xffc8_4000, true),
            (TdvfSectionType::Cfv, 0xffc0_0000, false),
            (TdvfSectionType::TempMem, 0x81_0000, false),
            (TdvfSectionType::TempMem, 0x80_b000, false),
            (TdvfSectionType::TdHob, 0x80_9000, false),
            (TdvfSectionType::TempMem, 0x80_0000, false),
        ]
    );
}

#[test]
fn mrtd_matches_reference_script_both_orders() {
    let fw = firmware();
    let tdvf = Tdvf::parse(&fw).unwrap();
    let out = reference(&[]);
    let single = mrtd(&tdvf, PageAddOrder::SinglePass).to_hex();
    let two = mrtd(&tdvf, PageAddOrder::TwoPass).to_hex();
    assert_eq!(single, value_of(&out, "mrtd_single_pass"));
    assert_eq!(two, value_of(&out, "mrtd_two_pass"));
    assert_ne!(single, two, "the two orders must differ for this firmware");
    // The pinned vectors were produced by the same script; they catch drift of the script too.
    assert_eq!(single, value_of(VECTORS, "mrtd_single_pass"));
    assert_eq!(two, value_of(VECTORS, "mrtd_two_pass"));
}

/// Every Debian OVMF build in the fixtures carries TDVF metadata (the generic OvmfPkgX64 build
/// supports TDX); MRTD must match the script on all of them.
#[test]
fn mrtd_matches_reference_script_on_other_ovmf_builds() {
    for fw in [
        "firmware/OVMF-2022.11.fd",
        "firmware/OVMF-2025.02.fd",
        "firmware/OVMF.amdsev-2026.08.fd",
    ] {
        let bytes = fs_err::read(fixture(fw)).unwrap();
        let tdvf = Tdvf::parse(&bytes).unwrap();
        let out = run(Command::new("python3").arg(SCRIPT).arg(fixture(fw)));
        assert_eq!(
            mrtd(&tdvf, PageAddOrder::SinglePass).to_hex(),
            value_of(&out, "mrtd_single_pass"),
            "{fw}"
        );
        assert_eq!(
            mrtd(&tdvf, PageAddOrder::TwoPass).to_hex(),
            value_of(&out, "mrtd_two_pass"),
            "{fw}"
        );
    }
}

#[test]
fn rtmr2_matches_reference_script() {
    let dir = scratch("rtmr2");
    let initrd: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let with = reference_with_initrd(&dir.join("initrd"), &initrd);
    assert_eq!(
        replay(&rtmr2_events(CMDLINE, Some(&initrd))).to_hex(),
        value_of(&with, "rtmr2")
    );
    // OVMF appends " initrd=initrd" to what it measures whenever an initrd is loaded: the same
    // events as the suffixed command line with the initrd after it.
    assert_eq!(
        replay(&rtmr2_events(CMDLINE, Some(&initrd))),
        replay(&[
            Event::of_data("", &utf16z(&format!("{CMDLINE} initrd=initrd"))),
            Event::of_data("", &initrd),
        ])
    );
    // A zero-length initrd: fw_cfg reports size 0 and OVMF appends nothing.
    let empty = reference_with_initrd(&dir.join("empty"), b"");
    assert_eq!(
        replay(&rtmr2_events(CMDLINE, Some(b""))).to_hex(),
        value_of(&empty, "rtmr2")
    );
    let without = reference(&["--cmdline", CMDLINE]);
    assert_eq!(
        replay(&rtmr2_events(CMDLINE, None)).to_hex(),
        value_of(&without, "rtmr2")
    );
    assert_eq!(
        replay(&rtmr2_events(CMDLINE, None)).to_hex(),
        value_of(VECTORS, "rtmr2_no_initrd")
    );
    // Non-ASCII command lines are UTF-16 encoded, not byte-widened.
    let ref_utf = reference(&["--cmdline", "quiet \u{e9}\u{1f600}"]);
    assert_eq!(
        replay(&rtmr2_events("quiet \u{e9}\u{1f600}", None)).to_hex(),
        value_of(&ref_utf, "rtmr2")
    );
}

/// MRTD (both page-add orders) and RTMR2 equal dstack-mr's, an implementation used on TDX
/// hardware, run by hand on the fixture firmware and the initrd below.
#[test]
fn mrtd_and_rtmr2_match_dstack_mr() {
    let fw = fs_err::read(fixture(FW)).unwrap();
    let tdvf = Tdvf::parse(&fw).unwrap();
    assert_eq!(value_of(DSTACK_MR, "cmdline"), CMDLINE);
    assert_eq!(
        mrtd(&tdvf, PageAddOrder::SinglePass).to_hex(),
        value_of(DSTACK_MR, "mrtd_single_pass")
    );
    assert_eq!(
        mrtd(&tdvf, PageAddOrder::TwoPass).to_hex(),
        value_of(DSTACK_MR, "mrtd_two_pass")
    );
    let initrd: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(
        Sha256Digest::of(&initrd).to_hex(),
        "08026c57be31084b60ded63e3101c86365be4d84b87b43bad97b3feb8152e20f"
    );
    assert_eq!(
        replay(&rtmr2_events(CMDLINE, Some(&initrd))).to_hex(),
        value_of(DSTACK_MR, "rtmr2")
    );
}

fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect()
}

fn sha384(data: &[u8]) -> [u8; 48] {
    Sha384::digest(data).into()
}

fn extend_all(digests: &[[u8; 48]]) -> String {
    let mut r = [0u8; 48];
    for d in digests {
        let mut h = Sha384::new();
        h.update(r);
        h.update(d);
        r = h.finalize().into();
    }
    hex::encode(r)
}

#[test]
fn rtmr1_uses_osslsigncode_authenticode_sha384() {
    let dir = scratch("rtmr1");
    let kernel_path = debian_kernel();
    let kernel = fs_err::read(kernel_path).unwrap();
    let mut auth = [0u8; 48];
    hex::decode_to_slice(osslsigncode_digest(kernel_path, "sha384", &dir), &mut auth).unwrap();
    let calling = sha384(b"Calling EFI Application from Boot Option");
    let sep = sha384(&[0, 0, 0, 0]);
    let exit1 = sha384(b"Exit Boot Services Invocation");
    let exit2 = sha384(b"Exit Boot Services Returned with Success");
    let first = replay(&rtmr1_events(&kernel, Rtmr1Order::KernelFirst).unwrap());
    assert_eq!(
        first.to_hex(),
        extend_all(&[auth, calling, sep, exit1, exit2])
    );
    let after = replay(&rtmr1_events(&kernel, Rtmr1Order::KernelAfterSeparator).unwrap());
    assert_eq!(
        after.to_hex(),
        extend_all(&[calling, sep, auth, exit1, exit2])
    );
}

#[test]
fn malformed_firmware_gives_typed_errors() {
    let fw = firmware();
    let len = fw.len();
    assert!(matches!(
        Tdvf::parse(&fw[..10]),
        Err(TdvfError::TooSmall { .. })
    ));
    // Break the footer GUID (the 16 bytes before the 32-byte reset-vector tail).
    let mut bad = fw.clone();
    bad[len - 40] ^= 0xff;
    assert!(matches!(
        Tdvf::parse(&bad),
        Err(TdvfError::NoFooterTable { .. })
    ));
    // Corrupt the descriptor signature and an unknown section type.
    let tdvf_at = fw.windows(4).rposition(|w| w == b"TDVF").unwrap();
    let mut bad = fw.clone();
    bad[tdvf_at] = b'X';
    assert!(matches!(
        Tdvf::parse(&bad),
        Err(TdvfError::BadDescriptor { .. })
    ));
    let mut bad = fw.clone();
    bad[tdvf_at + 16 + 24] = 9;
    assert!(matches!(
        Tdvf::parse(&bad),
        Err(TdvfError::UnknownSectionType { index: 0, value: 9 })
    ));
    let mut bad = fw.clone();
    bad[tdvf_at + 16 + 4..tdvf_at + 16 + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        Tdvf::parse(&bad),
        Err(TdvfError::BadSection { index: 0, .. })
    ));
    // A section claiming 1 TiB of memory (MemoryDataSize of section 0).
    let mut bad = fw.clone();
    bad[tdvf_at + 16 + 16..tdvf_at + 16 + 24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(
        Tdvf::parse(&bad),
        Err(TdvfError::BadSection { index: 0, .. })
    ));
    // Rename the TDX_METADATA_OFFSET entry (GUID e47a6535-... in mixed-endian form): a footer
    // table without a TDX entry.
    let tdx_guid = [0x35, 0x65, 0x7a, 0xe4, 0x4a, 0x98, 0x98, 0x47];
    let at = fw.windows(8).rposition(|w| w == tdx_guid).unwrap();
    assert!(at > len - 0x1000, "the entry lives in the footer table");
    let mut bad = fw.clone();
    bad[at] ^= 1;
    assert!(matches!(Tdvf::parse(&bad), Err(TdvfError::NoTdxMetadata)));
    // An entry length that runs past the table start.
    let mut bad = fw.clone();
    bad[at - 2..at].copy_from_slice(&0xfff0u16.to_le_bytes());
    assert!(matches!(
        Tdvf::parse(&bad),
        Err(TdvfError::FooterEntry { .. })
    ));
}

#[test]
fn mrtd_is_a_typed_sha384() {
    let fw = firmware();
    let d: Sha384Digest = mrtd(&Tdvf::parse(&fw).unwrap(), PageAddOrder::default());
    assert_eq!(d.to_hex().len(), 96);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn tdvf_parse_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = Tdvf::parse(&bytes);
    }

    #[test]
    fn tdvf_parse_never_panics_on_mutated_firmware_tail(
        edits in proptest::collection::vec((0usize..0x1_0000, any::<u8>()), 1..8),
        cut in 0usize..0x1_0000,
    ) {
        // Keep the last 64 KiB + header of the real image (footer table, reset vector), mutate it,
        // and optionally truncate the front so offsets point outside.
        static TAIL: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let mut tail = TAIL.get_or_init(|| { let fw = firmware(); fw[fw.len() - 0x1_0000..].to_vec() }).clone();
        for (at, v) in edits {
            tail[at] = v;
        }
        let tail = &tail[cut.min(tail.len())..];
        if let Ok(t) = Tdvf::parse(tail) {
            let _ = mrtd(&t, PageAddOrder::TwoPass);
        }
    }
}
