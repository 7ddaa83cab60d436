//! SEV-SNP launch digests: known answers from sev-snp-measure 0.0.13
//! (`vectors/snp/launch.toml`), typed errors for malformed firmware, and a property test that
//! the firmware parser never panics.

use std::num::NonZeroU32;

use measurements::snp::{
    self, CpuSignature, Firmware, FirmwareError, KernelHashes, SectionType, SnpError, SnpInputs,
    VcpuType, Vmm,
};
use measurements::{Sha256Digest, Sha384Digest};
use proptest::prelude::*;

fn read_firmware(name: &str) -> Vec<u8> {
    fs_err::read(crate::util::fixture("firmware").join(name)).unwrap()
}

fn vcpus(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

#[derive(Debug, serde::Deserialize)]
struct VectorFile {
    source: String,
    case: Vec<Vector>,
}

#[derive(Debug, serde::Deserialize)]
struct Vector {
    args: String,
    mode: String,
    firmware: String,
    vcpus: Option<u32>,
    vcpu_type: Option<String>,
    vcpu_fms: Option<[u32; 3]>,
    vmm: Option<String>,
    guest_features: Option<u64>,
    kernel_sha256: Option<Sha256Digest>,
    initrd_sha256: Option<Sha256Digest>,
    cmdline: Option<String>,
    digest: String,
}

impl Vector {
    fn vmm(&self) -> Vmm {
        match self.vmm.as_deref() {
            Some("ec2") => Vmm::Ec2,
            Some("gce") => Vmm::Gce,
            None | Some("qemu") => Vmm::Qemu(match (self.vcpu_fms, &self.vcpu_type) {
                (Some([f, m, s]), _) => CpuSignature::from_family_model_stepping(f, m, s),
                (None, Some(t)) => t.parse::<VcpuType>().unwrap().signature(),
                (None, None) => panic!("{}: no vCPU", self.args),
            }),
            Some(other) => panic!("unknown vmm {other}"),
        }
    }

    /// The hashes table from digests only, as a client without the files would build it.
    fn kernel_hashes(&self) -> Option<KernelHashes> {
        Some(KernelHashes {
            kernel: self.kernel_sha256?,
            initrd: self.initrd_sha256.unwrap_or_else(|| Sha256Digest::of(b"")),
            cmdline: KernelHashes::cmdline_hash(self.cmdline.as_deref().unwrap_or("")),
        })
    }
}

#[test]
fn known_answer_vectors() {
    let text = include_str!("vectors/snp/launch.toml");
    let file: VectorFile = toml::from_str(text).unwrap();
    assert!(file.source.starts_with("sev-snp-measure 0.0.13"));
    assert!(file.case.len() >= 9);
    for v in &file.case {
        let bytes = read_firmware(&v.firmware);
        let fw = Firmware::parse(&bytes).unwrap();
        let hashes = v.kernel_hashes();
        let got = match v.mode.as_str() {
            "snp:ovmf-hash" => snp::ovmf_hash(&fw).to_hex(),
            "snp" => snp::snp_launch_digest(&SnpInputs {
                firmware: &fw,
                ovmf_hash: None,
                kernel_hashes: hashes,
                vcpus: vcpus(v.vcpus.unwrap()),
                vmm: v.vmm(),
                guest_features: v.guest_features.unwrap_or(snp::SNP_ACTIVE),
            })
            .unwrap()
            .to_hex(),
            "seves" => {
                snp::seves_launch_digest(&fw, hashes.as_ref(), vcpus(v.vcpus.unwrap()), v.vmm())
                    .unwrap()
                    .to_hex()
            }
            "sev" => snp::sev_launch_digest(&fw, hashes.as_ref())
                .unwrap()
                .to_hex(),
            m => panic!("unknown mode {m}"),
        };
        assert_eq!(got, v.digest, "sev-snp-measure {}", v.args);
    }
}

/// Starting from a precomputed OVMF hash gives the same digest as hashing the firmware.
#[test]
fn ovmf_hash_shortcut_is_equivalent() {
    let bytes = read_firmware("OVMF.amdsev-2026.08.fd");
    let fw = Firmware::parse(&bytes).unwrap();
    let mut inputs = SnpInputs {
        firmware: &fw,
        ovmf_hash: None,
        kernel_hashes: None,
        vcpus: vcpus(4),
        vmm: Vmm::Qemu(VcpuType::EpycMilan.signature()),
        guest_features: 1,
    };
    let full = snp::snp_launch_digest(&inputs).unwrap();
    let seed: Sha384Digest =
        "9d0dd8be18c86e3fe3bf0038ed75ebf5340bee69fd2632c8ff9409964575960ae1f7e84be387d2e3467bc3508d1e4806"
            .parse()
            .unwrap();
    inputs.ovmf_hash = Some(seed);
    assert_eq!(snp::snp_launch_digest(&inputs).unwrap(), full);
}

#[test]
fn real_firmware_metadata() {
    let bytes = read_firmware("OVMF.amdsev-2026.08.fd");
    let fw = Firmware::parse(&bytes).unwrap();
    assert_eq!(fw.gpa(), 0xFFC0_0000);
    assert_eq!(fw.sev_es_reset_eip(), Some(0x0080_B004));
    assert_eq!(fw.hash_table().map(|t| t.gpa), Some(0x0081_0C00));
    let kinds: Vec<_> = fw.sections().iter().map(|s| s.kind).collect();
    use SectionType::*;
    assert_eq!(
        kinds,
        [
            SnpSecMem,
            SnpSecMem,
            SnpSecrets,
            Cpuid,
            SvsmCaa,
            SnpSecMem,
            SnpKernelHashes
        ]
    );
    // The TDX build carries SEV metadata with two zero-size sections.
    let tdx = read_firmware("OVMF.inteltdx.ms-2026.08.fd");
    let tdx = Firmware::parse(&tdx).unwrap();
    assert_eq!(tdx.sections().iter().filter(|s| s.size == 0).count(), 2);
}

/// Kernel hashes on firmware without the kernel-hashes section: refused in every mode, as
/// sev-snp-measure refuses them.
#[test]
fn kernel_hashes_need_the_amdsev_build() {
    let hashes = KernelHashes::from_bytes(b"kernel", None, Some("console=ttyS0"));
    for name in [
        "OVMF-2022.11.fd",
        "OVMF-2025.02.fd",
        "OVMF.inteltdx.ms-2026.08.fd",
    ] {
        let bytes = read_firmware(name);
        let fw = Firmware::parse(&bytes).unwrap();
        let inputs = SnpInputs {
            firmware: &fw,
            ovmf_hash: None,
            kernel_hashes: Some(hashes),
            vcpus: vcpus(1),
            vmm: Vmm::Qemu(VcpuType::Epyc.signature()),
            guest_features: 1,
        };
        assert!(
            matches!(
                snp::snp_launch_digest(&inputs),
                Err(SnpError::KernelHashesUnsupported { .. })
            ),
            "{name}"
        );
        assert!(matches!(
            snp::seves_launch_digest(&fw, Some(&hashes), vcpus(1), Vmm::Ec2),
            Err(SnpError::KernelHashesUnsupported { .. })
        ));
        assert!(matches!(
            snp::sev_launch_digest(&fw, Some(&hashes)),
            Err(SnpError::KernelHashesUnsupported { .. })
        ));
    }
}

// ---- Synthetic firmware -------------------------------------------------------------------

/// The on-disk form of a GUID given in its canonical text form (the first three fields
/// are stored little-endian, the last two as written).
fn guid(text: &str) -> Vec<u8> {
    let hex: Vec<u8> = text
        .split('-')
        .flat_map(|field| {
            (0..field.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&field[i..i + 2], 16).unwrap())
        })
        .collect();
    assert_eq!(hex.len(), 16, "{text}");
    let (a, rest) = hex.split_at(4);
    let (b, rest) = rest.split_at(2);
    let (c, d) = rest.split_at(2);
    [a, b, c]
        .iter()
        .flat_map(|f| f.iter().rev())
        .chain(d)
        .copied()
        .collect()
}

fn footer_guid() -> Vec<u8> {
    guid("96b582de-1fb2-45f7-baea-a366c55a082d")
}
fn metadata_guid() -> Vec<u8> {
    guid("dc886566-984a-4798-a75e-5585a7bf67cc")
}
fn reset_guid() -> Vec<u8> {
    guid("00f771de-1a7e-4fcb-890e-68c77e2fb44e")
}
fn hash_table_guid() -> Vec<u8> {
    guid("7255371f-3a3b-4b04-927b-1da6efa8d454")
}

/// A synthetic OVMF image, built from the edk2 layout description (not from our parser).
#[derive(Clone)]
struct Synth {
    pages: usize,
    /// Table entries `(guid, data)`, in file order.
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// Metadata header fields and items `(gpa, size, type)`, placed at offset 0x100.
    signature: [u8; 4],
    version: u32,
    items: Vec<(u32, u32, u32)>,
    /// Overrides: the header's size field, the footer's total length.
    header_size: Option<u32>,
    total_len: Option<u16>,
}

const METADATA_AT: usize = 0x100;

impl Synth {
    fn valid() -> Self {
        Self {
            pages: 2,
            entries: vec![
                (
                    hash_table_guid(),
                    [0x0081_0C00u32.to_le_bytes(), 0x400u32.to_le_bytes()].concat(),
                ),
                (reset_guid(), 0x0080_B004u32.to_le_bytes().to_vec()),
                (
                    metadata_guid(),
                    ((2 * 4096 - METADATA_AT) as u32).to_le_bytes().to_vec(),
                ),
            ],
            signature: *b"ASEV",
            version: 1,
            items: vec![
                (0x80_0000, 0x9000, 1),
                (0x80_d000, 0x1000, 2),
                (0x80_e000, 0x1000, 3),
                (0x80_f000, 0x1000, 4),
                (0x81_0000, 0x1000, 0x10),
            ],
            header_size: None,
            total_len: None,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let len = self.pages * 4096;
        let mut img = vec![0u8; len];
        let mut md = self.signature.to_vec();
        md.extend(
            self.header_size
                .unwrap_or(16 + 12 * self.items.len() as u32)
                .to_le_bytes(),
        );
        md.extend(self.version.to_le_bytes());
        md.extend((self.items.len() as u32).to_le_bytes());
        for (g, s, t) in &self.items {
            md.extend(g.to_le_bytes());
            md.extend(s.to_le_bytes());
            md.extend(t.to_le_bytes());
        }
        img[METADATA_AT..METADATA_AT + md.len()].copy_from_slice(&md);
        let mut table = Vec::new();
        for (g, d) in &self.entries {
            table.extend(d);
            table.extend(((d.len() + 18) as u16).to_le_bytes());
            table.extend(g);
        }
        table.extend(
            self.total_len
                .unwrap_or((table.len() + 18) as u16)
                .to_le_bytes(),
        );
        table.extend(footer_guid());
        let end = len - 32;
        img[end - table.len()..end].copy_from_slice(&table);
        img
    }
}

fn parse_err(s: &Synth) -> FirmwareError {
    Firmware::parse(&s.bytes()).expect_err("must be rejected")
}

#[test]
fn synthetic_firmware_parses() {
    let b = Synth::valid().bytes();
    let fw = Firmware::parse(&b).unwrap();
    assert_eq!(fw.sections().len(), 5);
    assert_eq!(fw.sev_es_reset_eip(), Some(0x0080_B004));
    assert_eq!(fw.gpa(), (1 << 32) - 8192);
}

#[test]
fn malformed_size() {
    for len in [0, 4095, 4097, 3 * 4096 + 1] {
        assert_eq!(
            Firmware::parse(&vec![0; len]).unwrap_err(),
            FirmwareError::Size { len }
        );
    }
}

#[test]
fn malformed_table() {
    assert!(matches!(
        Firmware::parse(&[0; 4096]),
        Err(FirmwareError::MissingFooter { .. })
    ));

    let mut s = Synth::valid();
    s.total_len = Some(5);
    assert!(matches!(
        parse_err(&s),
        FirmwareError::BadTableLength { length: 5, .. }
    ));
    s.total_len = Some(u16::MAX);
    assert!(matches!(
        parse_err(&s),
        FirmwareError::BadTableLength { .. }
    ));

    // The table claims 7 more bytes than its entries: they are not an entry.
    let mut s = Synth::valid();
    let real = Synth::valid().bytes();
    let total = u16::from_le_bytes([real[8192 - 50], real[8192 - 49]]);
    s.total_len = Some(total + 7);
    assert!(matches!(
        parse_err(&s),
        FirmwareError::StrayTableBytes { len: 7, .. } | FirmwareError::BadEntryLength { .. }
    ));

    // An entry length shorter than its own trailer.
    let mut b = Synth::valid().bytes();
    let last_trailer = 8192 - 50 - 18;
    b[last_trailer..last_trailer + 2].copy_from_slice(&3u16.to_le_bytes());
    assert!(matches!(
        Firmware::parse(&b),
        Err(FirmwareError::BadEntryLength { length: 3, .. })
    ));
    // An entry length reaching before the table.
    b[last_trailer..last_trailer + 2].copy_from_slice(&1000u16.to_le_bytes());
    assert!(matches!(
        Firmware::parse(&b),
        Err(FirmwareError::BadEntryLength { length: 1000, .. })
    ));

    let mut s = Synth::valid();
    s.entries.push((reset_guid(), vec![0, 0, 0, 0]));
    assert!(matches!(
        parse_err(&s),
        FirmwareError::DuplicateEntry { .. }
    ));

    let mut s = Synth::valid();
    s.entries[1].1 = vec![4, 0];
    assert!(matches!(
        parse_err(&s),
        FirmwareError::ShortEntry {
            name: "SEV_ES_RESET_BLOCK",
            len: 2,
            needed: 4
        }
    ));
}

#[test]
fn malformed_metadata() {
    let mut s = Synth::valid();
    s.entries[2].1 = 9000u32.to_le_bytes().to_vec();
    assert!(matches!(
        parse_err(&s),
        FirmwareError::MetadataOutOfBounds {
            offset_from_end: 9000
        }
    ));

    let mut s = Synth::valid();
    s.header_size = Some(16 + 12);
    assert!(matches!(
        parse_err(&s),
        FirmwareError::MetadataOutOfBounds { .. }
    ));
    s.header_size = Some(8);
    assert!(matches!(
        parse_err(&s),
        FirmwareError::MetadataOutOfBounds { .. }
    ));

    let mut s = Synth::valid();
    s.signature = *b"XSEV";
    assert!(matches!(
        parse_err(&s),
        FirmwareError::BadMetadataHeader {
            field: "signature",
            ..
        }
    ));
    let mut s = Synth::valid();
    s.version = 2;
    assert!(matches!(
        parse_err(&s),
        FirmwareError::BadMetadataHeader {
            field: "version",
            ..
        }
    ));

    let mut s = Synth::valid();
    s.items.push((0x90_0000, 0x1000, 5));
    assert_eq!(
        parse_err(&s),
        FirmwareError::UnknownSectionType { index: 5, value: 5 }
    );

    let mut s = Synth::valid();
    s.items[0].1 = 0x1800;
    assert!(matches!(
        parse_err(&s),
        FirmwareError::SectionSize {
            index: 0,
            size: 0x1800,
            ..
        }
    ));

    let mut s = Synth::valid();
    s.items.push((0x80_8000, 0x2000, 1));
    assert_eq!(
        parse_err(&s),
        FirmwareError::OverlappingSections {
            first: 0,
            second: 5
        }
    );
}

/// Measures a synthetic image (2 vCPUs, with kernel hashes).
fn launch(s: &Synth) -> Result<Sha384Digest, SnpError> {
    let b = s.bytes();
    let fw = Firmware::parse(&b).unwrap();
    snp::snp_launch_digest(&SnpInputs {
        firmware: &fw,
        ovmf_hash: None,
        kernel_hashes: Some(KernelHashes::from_bytes(b"k", None, None)),
        vcpus: vcpus(2),
        vmm: Vmm::Qemu(CpuSignature(0)),
        guest_features: 1,
    })
}

#[test]
fn launch_errors_on_wellformed_firmware() {
    launch(&Synth::valid()).unwrap();

    let mut s = Synth::valid();
    s.entries.remove(1);
    assert_eq!(launch(&s), Err(SnpError::MissingResetBlock));

    let mut s = Synth::valid();
    s.entries[1].1 = vec![0; 4];
    assert_eq!(launch(&s), Err(SnpError::NoApResetEip { vcpus: 2 }));

    let mut s = Synth::valid();
    s.items[4].1 = 0x2000;
    assert!(matches!(
        launch(&s),
        Err(SnpError::KernelHashesSectionSize { size: 0x2000, .. })
    ));

    let mut s = Synth::valid();
    s.entries[0].1 = 0x0081_0FF0u32.to_le_bytes().to_vec();
    assert_eq!(
        launch(&s),
        Err(SnpError::HashTableCrossesPage { gpa: 0x0081_0FF0 })
    );

    let mut s = Synth::valid();
    s.entries.remove(0);
    assert_eq!(
        launch(&s),
        Err(SnpError::KernelHashesUnsupported {
            missing: "SEV_HASH_TABLE_RV entry"
        })
    );
}

/// Parses, and if it parses, measures in every mode: errors are fine, panics are bugs.
fn exercise(bytes: &[u8]) {
    let Ok(fw) = Firmware::parse(bytes) else {
        return;
    };
    let hashes = KernelHashes::from_bytes(b"k", Some(b"i"), Some("c"));
    for kernel_hashes in [None, Some(hashes)] {
        for vmm in [Vmm::Qemu(CpuSignature(0xa00f11)), Vmm::Ec2, Vmm::Gce] {
            let inputs = SnpInputs {
                firmware: &fw,
                ovmf_hash: None,
                kernel_hashes,
                vcpus: vcpus(2),
                vmm,
                guest_features: 1,
            };
            let _ = snp::snp_launch(&inputs, true);
            let _ = snp::seves_launch_digest(&fw, kernel_hashes.as_ref(), vcpus(2), vmm);
        }
        let _ = snp::sev_launch_digest(&fw, kernel_hashes.as_ref());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parser_never_panics_on_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..9000)) {
        exercise(&data);
        // The same bytes, padded to whole pages so the table parser is reached.
        let mut padded = data.clone();
        padded.resize(data.len().div_ceil(4096).max(1) * 4096, 0);
        exercise(&padded);
    }

    #[test]
    fn parser_never_panics_on_mutated_firmware(
        edits in prop::collection::vec((0usize..600, any::<u8>()), 1..8),
        from_metadata in any::<bool>(),
    ) {
        let mut b = Synth::valid().bytes();
        let len = b.len();
        for (pos, byte) in edits {
            // Mutate the metadata block or the footer table, where the parser looks.
            let at = if from_metadata { METADATA_AT + pos % 96 } else { len - 1 - pos % 300 };
            b[at] = byte;
        }
        exercise(&b);
    }
}
