//! The build record: what a build consumed and produced, and what a verifier pins.
//!
//! `record.json` is written by `enclave-builder build` and read by verifiers. Its `schema`
//! string is versioned: adding an optional field keeps [`RECORD_SCHEMA`]; renaming, removing
//! or changing the meaning of one requires a new schema string. Field order is the struct
//! order, so the serialised bytes are deterministic.

use serde::{Deserialize, Serialize};

use crate::{Sha256Digest, Sha384Digest};

/// The schema identifier of records this crate writes and reads.
pub const RECORD_SCHEMA: &str = "enclave-builder.record.v1";

/// A build record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Always [`RECORD_SCHEMA`].
    pub schema: String,
    /// The builder that produced it.
    pub builder: BuilderInfo,
    /// Image name and version from the manifest.
    pub image: ImageInfo,
    /// sha256 of the manifest file's bytes.
    pub manifest_sha256: Sha256Digest,
    /// The only time that reached an artifact.
    pub source_date_epoch: u64,
    /// Every external input, in manifest order.
    pub inputs: Vec<Input>,
    /// Every artifact in the output directory except the record itself, by name.
    pub outputs: Vec<Output>,
    /// The root file system and its dm-verity parameters.
    pub rootfs: Rootfs,
    /// Data disks, in attachment order (absent when the manifest declares none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<Disk>,
    /// The kernel command line.
    pub kernel_cmdline: KernelCmdline,
    /// The launch measurement of this image on each platform profile of the manifest, in
    /// manifest order; an SEV-SNP profile listing several vCPU counts has one entry per count
    /// (same `profile`, its own `vcpus` and `launch_digest`), in the manifest's count order.
    pub measurements: Vec<ProfileMeasurement>,
}

/// The launch measurement of the image on one platform profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileMeasurement {
    /// The profile's name in the manifest.
    pub profile: String,
    /// sha256 of the firmware file measured.
    pub firmware_sha256: Sha256Digest,
    /// The platform's values.
    pub platform: PlatformMeasurement,
}

/// Platform-specific launch values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum PlatformMeasurement {
    /// AMD SEV-SNP: the attestation report's `MEASUREMENT`.
    Snp {
        /// Number of vCPUs.
        vcpus: u32,
        /// `qemu`, `ec2` or `gce`.
        vmm: String,
        /// QEMU vCPU model, when `vmm` is `qemu`.
        vcpu_type: Option<String>,
        /// VMSA `SEV_FEATURES`.
        guest_features: u64,
        /// The launch digest (SHA-384, hex).
        launch_digest: Sha384Digest,
    },
    /// Intel TDX: MRTD and the RTMRs the image determines.
    Tdx {
        /// `single-pass` or `two-pass`.
        page_add_order: String,
        /// MRTD (firmware).
        mrtd: Sha384Digest,
        /// RTMR1 (kernel, boot events; QEMU >= 10.1 unpatched kernel).
        rtmr1: Sha384Digest,
        /// RTMR2 (command line, initrd).
        rtmr2: Sha384Digest,
    },
    /// A TPM 2.0 (vTPM) with UEFI measured boot of a unified kernel image: the SHA-256 bank's
    /// PCR 4 and PCR 11 when the kernel starts.
    Vtpm {
        /// The UKI output file the firmware boots (`uki-PROFILE.efi`).
        uki: String,
        /// sha256 of the UKI file.
        uki_sha256: Sha256Digest,
        /// PCR 4: the firmware's boot-option events, then the Authenticode hashes of the UKI
        /// and of the kernel systemd-stub loads from it.
        pcr4: Sha256Digest,
        /// PCR 11: systemd-stub's measurements of the UKI sections (before any boot phase).
        pcr11: Sha256Digest,
    },
}

/// Which builder wrote the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuilderInfo {
    /// Crate name.
    pub name: String,
    /// Crate version.
    pub version: String,
}

/// Image identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageInfo {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
}

/// One verified input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Input {
    /// An OCI image (manifest and config) in an image layout.
    OciImage {
        /// The layout directory as the manifest names it.
        source: String,
        /// The image manifest digest.
        manifest: Sha256Digest,
        /// The image config digest.
        config: Sha256Digest,
    },
    /// One layer blob.
    Layer {
        /// Where it came from, as the manifest names it.
        source: String,
        /// Blob digest (sha256 of the blob as stored).
        sha256: Sha256Digest,
        /// Blob size in bytes.
        size: u64,
        /// The layer's media type (`application/vnd.oci.image.layer.v1.tar+gzip`, ...).
        media_type: String,
    },
    /// An extra file placed in the root file system or on a data disk.
    File {
        /// The data disk it is on; absent for the root file system.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disk: Option<String>,
        /// Path inside the image (or the disk).
        path: String,
        /// Source file as the manifest names it.
        source: String,
        /// sha256 of the source file.
        sha256: Sha256Digest,
        /// Size in bytes.
        size: u64,
    },
    /// A binary built from a Cargo workspace and placed in the root file system.
    RustComponent {
        /// Workspace package.
        package: String,
        /// Binary target.
        bin: String,
        /// Path inside the image.
        path: String,
        /// sha256 of the built binary.
        sha256: Sha256Digest,
        /// Its size.
        size: u64,
        /// The crates compiled into it (normal and build dependencies), sorted.
        crates: Vec<Crate>,
    },
    /// A Python wheel, unpacked (never installed) into the root file system or a data disk.
    Wheel {
        /// The data disk it is on; absent for the root file system.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disk: Option<String>,
        /// The `.whl` file as the manifest names it.
        source: String,
        /// sha256 of the `.whl` file.
        sha256: Sha256Digest,
        /// Its size.
        size: u64,
        /// Distribution name and version from the wheel's metadata.
        name: String,
        /// Version.
        version: String,
        /// Every member placed, with its path inside the image (or disk), sorted by path.
        files: Vec<WheelFile>,
    },
    /// The kernel image.
    Kernel {
        /// As the manifest names it.
        source: String,
        /// sha256 of the file.
        sha256: Sha256Digest,
        /// Size in bytes.
        size: u64,
    },
    /// The kernel's configuration (the resolved `.config` the kernel was built with).
    KernelConfig {
        /// As the manifest names it.
        source: String,
        /// sha256 of the file.
        sha256: Sha256Digest,
        /// Size in bytes.
        size: u64,
    },
    /// The systemd EFI stub a vTPM profile's unified kernel image is built on.
    UkiStub {
        /// As the manifest names it.
        source: String,
        /// sha256 of the file.
        sha256: Sha256Digest,
        /// Size in bytes.
        size: u64,
    },
    /// The firmware image.
    Firmware {
        /// As the manifest names it.
        source: String,
        /// sha256 of the file.
        sha256: Sha256Digest,
        /// Size in bytes.
        size: u64,
    },
}

/// One member of a wheel as placed in the image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WheelFile {
    /// Path inside the image (or disk).
    pub path: String,
    /// sha256 of its content (equal to the wheel's `RECORD` entry, which was checked).
    pub sha256: Sha256Digest,
    /// Size in bytes.
    pub size: u64,
}

/// A data disk: an EROFS image with an appended dm-verity tree, opened by the kernel from the
/// command line and mounted read-only by the guest init.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// The disk's name (also the device-mapper name).
    pub name: String,
    /// Where the guest mounts it.
    pub mount: String,
    /// The output file (`disk-NAME.img`).
    pub image: String,
    /// The virtio block device it is attached as (`/dev/vdb`, ...).
    pub device: String,
    /// The device-mapper device the kernel creates for it (`/dev/dm-1`, ...).
    pub dm_device: String,
    /// The file system and its verity tree, as for the root.
    pub filesystem: Rootfs,
}

/// One crate of a Rust component's dependency graph.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crate {
    /// Crate name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Kind of source (`registry`, `git`); `None` for workspace members.
    pub source: Option<String>,
    /// The `Cargo.lock` sha256 of the `.crate` file, for registry crates.
    pub checksum: Option<String>,
}

/// One artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// File name in the output directory.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the file.
    pub sha256: Sha256Digest,
}

/// The root file system image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rootfs {
    /// The file-system type (`erofs`).
    pub filesystem: String,
    /// The file-system UUID (derived from the inputs).
    pub uuid: String,
    /// Size of the file-system (data) area in bytes; the verity hash area follows it.
    pub data_size: u64,
    /// dm-verity parameters.
    pub verity: Verity,
}

/// dm-verity parameters, as `veritysetup` and the kernel take them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verity {
    /// Hash algorithm (`sha256`).
    pub hash_algorithm: String,
    /// Root hash (hex).
    pub root_hash: Sha256Digest,
    /// Salt (hex).
    pub salt: String,
    /// Data block size in bytes.
    pub data_block_size: u32,
    /// Hash block size in bytes.
    pub hash_block_size: u32,
    /// Number of data blocks.
    pub data_blocks: u64,
    /// Number of hash-tree blocks (without the superblock).
    pub hash_blocks: u64,
    /// Byte offset of the verity superblock in the image (`veritysetup --hash-offset`).
    pub hash_offset: u64,
    /// UUID in the verity superblock.
    pub uuid: String,
}

/// The kernel command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelCmdline {
    /// The root/verity part the builder adds (`root=... dm-mod.create=...`).
    pub verity_fragment: String,
    /// The whole line the VMM passes (`-append`): the manifest's line, then the fragment.
    pub full: String,
}
