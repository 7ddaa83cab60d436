//! The manifest's serde types. Changing a field name or meaning is a schema change: bump
//! [`SCHEMA_VERSION`] and document it in the README.

use measurements::Sha256Digest;
use serde::Deserialize;

use super::types::{Epoch, ImagePath, Mode, VcpuCounts};

/// The manifest schema this builder reads.
pub const SCHEMA_VERSION: u32 = 1;

/// A whole manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Schema version; must be [`SCHEMA_VERSION`].
    pub schema: u32,
    /// Name, version, time.
    pub image: Image,
    /// The root file system.
    pub rootfs: Rootfs,
    /// Kernel, firmware, command line.
    pub boot: Boot,
    /// Data disks (model weights, tokenizers): each its own EROFS image with its own
    /// dm-verity tree, attached read-only after the root, in this order.
    #[serde(default)]
    pub disks: Vec<Disk>,
    /// Where the image runs: `build` computes each profile's launch measurement.
    #[serde(default)]
    pub profiles: Vec<Profile>,
}

/// A data disk: an EROFS image with its own dm-verity tree. Its root hash goes on the measured
/// kernel command line (`dm-mod.create=`), and the guest init mounts it read-only at `mount`
/// before the workload starts (and refuses to start it if the disk is missing).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// Name: lowercase letters, digits and `-`; the image file is `disk-NAME.img` and the
    /// device-mapper device is called NAME.
    pub name: String,
    /// Absolute mount point in the guest (created as a directory in the root image).
    pub mount: ImagePath,
    /// Wheels unpacked into the disk.
    #[serde(default)]
    pub wheels: Vec<WheelEntry>,
    /// Single files placed into the disk.
    #[serde(default)]
    pub files: Vec<FileEntry>,
}

/// A Python wheel pinned by the sha256 of the `.whl` file, unpacked (not installed: no
/// scripts run, no bytecode is compiled). Every member is checked against the wheel's own
/// `RECORD` before it is placed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WheelEntry {
    /// The `.whl` file (relative to the manifest).
    pub wheel: String,
    /// sha256 of the `.whl` file.
    pub sha256: Option<Sha256Digest>,
    /// Only the members under this directory of the wheel (e.g. `pkg/model`), placed relative
    /// to it; default: every member.
    #[serde(default)]
    pub take: Option<String>,
    /// Absolute directory (inside the image or disk) the members go to; default `/`.
    #[serde(default = "default_into")]
    pub into: ImagePath,
}

fn default_into() -> ImagePath {
    // "/" is absolute, with no `.`/`..` component, NUL or long name: it parses.
    ImagePath::try_from("/".to_owned()).expect("\"/\" is an image path")
}

impl Manifest {
    /// `(index, path)` of every `[[rootfs.rust]]` component.
    pub fn rust_paths(&self) -> impl Iterator<Item = (usize, &str)> {
        self.rootfs
            .rust
            .iter()
            .enumerate()
            .map(|(i, r)| (i, r.path.as_str()))
    }
}

/// A platform profile: the machine an image runs on, separate from the image itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "platform", rename_all = "lowercase")]
pub enum Profile {
    /// AMD SEV-SNP with QEMU/KVM (or EC2/GCE) and OVMF, measured direct boot.
    Snp(SnpProfile),
    /// Intel TDX with QEMU and TDVF (OVMF), direct boot.
    Tdx(TdxProfile),
    /// A TPM 2.0 (vTPM) with measured boot: OVMF starts a unified kernel image (UKI) built
    /// from the image's kernel, command line and initrd; PCR 4 and PCR 11 identify it.
    Vtpm(VtpmProfile),
}

impl Profile {
    /// The profile's name.
    pub fn name(&self) -> &str {
        match self {
            Profile::Snp(p) => &p.name,
            Profile::Tdx(p) => &p.name,
            Profile::Vtpm(p) => &p.name,
        }
    }

    /// The profile's firmware.
    pub fn firmware(&self) -> &InputFile {
        match self {
            Profile::Snp(p) => &p.firmware,
            Profile::Tdx(p) => &p.firmware,
            Profile::Vtpm(p) => &p.firmware,
        }
    }
}

/// An SEV-SNP platform.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpProfile {
    /// Name, unique in the manifest (appears in the record).
    pub name: String,
    /// The OVMF build (an AmdSev build with the SNP kernel-hashes section).
    pub firmware: InputFile,
    /// The vCPU counts to measure (one VMSA each): one launch digest per count.
    pub vcpus: VcpuCounts,
    /// QEMU vCPU model (`EPYC-Milan`, ...), as sev-snp-measure names them; QEMU only.
    #[serde(default)]
    pub vcpu_type: Option<String>,
    /// VMSA `SEV_FEATURES` (0x1 = SNP active; 0x21 with the host's `debug_swap`).
    #[serde(default = "default_guest_features")]
    pub guest_features: u64,
    /// The VMM: `qemu`, `ec2` or `gce`.
    #[serde(default)]
    pub vmm: VmmType,
}

fn default_guest_features() -> u64 {
    0x1
}

/// The VMM an SNP guest runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmmType {
    /// QEMU/KVM.
    #[default]
    Qemu,
    /// AWS EC2.
    Ec2,
    /// Google Compute Engine.
    Gce,
}

/// An Intel TDX platform.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxProfile {
    /// Name, unique in the manifest.
    pub name: String,
    /// The TDVF (OVMF Intel TDX) build.
    pub firmware: InputFile,
    /// How the VMM orders TDH.MEM.PAGE.ADD and TDH.MR.EXTEND (QEMU version dependent).
    #[serde(default)]
    pub page_add_order: PageAddOrder,
}

/// A vTPM platform: UEFI firmware with TPM 2.0 measured boot of a UKI.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VtpmProfile {
    /// Name, unique in the manifest; the UKI is written as `uki-NAME.efi`.
    pub name: String,
    /// The UEFI firmware (an OVMF build with TPM 2.0 measured boot).
    pub firmware: InputFile,
    /// The systemd EFI stub the UKI is built on (systemd 257: `linuxx64.efi.stub`).
    pub stub: InputFile,
}

/// MRTD page-add ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PageAddOrder {
    /// Add then extend, page by page (upstream QEMU >= 9).
    #[default]
    SinglePass,
    /// All adds of a section, then all extends (older Intel/Canonical QEMU).
    TwoPass,
}

/// Identity of the image.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// Image name (appears in the record).
    pub name: String,
    /// Image version (appears in the record).
    pub version: String,
    /// The only time that may reach an artifact (seconds since the Unix epoch).
    pub source_date_epoch: Epoch,
}

/// The root file system: layers applied in order, then extra files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rootfs {
    /// Layer sources, lowest first.
    pub layers: Vec<LayerSource>,
    /// Files placed after all layers.
    #[serde(default)]
    pub files: Vec<FileEntry>,
    /// Wheels unpacked after the files.
    #[serde(default)]
    pub wheels: Vec<WheelEntry>,
    /// Binaries built from a Cargo workspace, placed after the files and wheels.
    #[serde(default)]
    pub rust: Vec<RustEntry>,
}

/// A binary the builder compiles from a Cargo workspace (locked, static, path-remapped) and
/// places in the image. Its pin is the workspace's `Cargo.lock` and sources; the record lists
/// the binary's digest and its crate graph.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RustEntry {
    /// The workspace root (relative to the manifest).
    pub workspace: String,
    /// The package.
    pub package: String,
    /// The binary target.
    pub bin: String,
    /// Absolute path inside the image.
    pub path: ImagePath,
    /// Permission bits (default 0o755).
    #[serde(default = "default_exec_mode")]
    pub mode: Mode,
}

fn default_exec_mode() -> Mode {
    // 0o755 has no bits beyond 0o7777: it parses.
    Mode::try_from(0o755).expect("0o755 is a mode")
}

/// Where layers come from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawLayer")]
pub enum LayerSource {
    /// Every layer of one image in an OCI image layout directory, in the image's order.
    Oci {
        /// The layout directory (relative to the manifest).
        oci: String,
        /// The image manifest's digest (`sha256:...`), which selects and pins the image.
        manifest: Option<Sha256Digest>,
    },
    /// One tar file (uncompressed, gzip or zstd), pinned by the sha256 of the file.
    Tar {
        /// The tar file (relative to the manifest).
        tar: String,
        /// sha256 of the file as it is on disk.
        sha256: Option<Sha256Digest>,
    },
}

/// An extra file placed into the image after the layers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Absolute path inside the image.
    pub path: ImagePath,
    /// The file providing the content (relative to the manifest).
    pub source: String,
    /// sha256 of `source`.
    pub sha256: Option<Sha256Digest>,
    /// Permission bits (write `0o644`).
    pub mode: Mode,
    /// Owner user id.
    #[serde(default)]
    pub uid: u32,
    /// Owner group id.
    #[serde(default)]
    pub gid: u32,
}

/// A local file pinned by sha256.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputFile {
    /// Path (relative to the manifest).
    pub path: String,
    /// sha256 of the file.
    pub sha256: Option<Sha256Digest>,
}

/// Boot inputs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boot {
    /// The kernel image the VMM loads (`-kernel`).
    pub kernel: InputFile,
    /// The kernel's configuration (the resolved `.config`), pinned so the record can name
    /// it; the kernel itself is pinned by `kernel`.
    #[serde(default)]
    pub kernel_config: Option<InputFile>,
    /// The firmware (`-bios`), e.g. an OVMF build.
    pub firmware: InputFile,
    /// Kernel command line; the builder appends the root/verity parameters.
    #[serde(default)]
    pub cmdline: String,
    /// The init the kernel starts (`init=`), e.g. `/sbin/enclave-init`. When given, the last
    /// OCI image's config (Entrypoint, Cmd, Env, WorkingDir, User) is written to
    /// `/etc/enclave/workload.json` for it.
    #[serde(default)]
    pub init: Option<ImagePath>,
    /// The block device the root image is attached as inside the guest.
    #[serde(default = "default_root_device")]
    pub root_device: String,
}

fn default_root_device() -> String {
    "/dev/vda".to_owned()
}

/// The layer table as written; exactly one of `oci` and `tar` must be present. Parsing through
/// this keeps serde's field-level messages (an untagged enum would only say "no variant").
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayer {
    oci: Option<String>,
    manifest: Option<Sha256Digest>,
    tar: Option<String>,
    sha256: Option<Sha256Digest>,
}

impl TryFrom<RawLayer> for LayerSource {
    type Error = String;

    fn try_from(r: RawLayer) -> Result<Self, String> {
        match (r.oci, r.tar) {
            (Some(oci), None) if r.sha256.is_none() => {
                Ok(LayerSource::Oci { oci, manifest: r.manifest })
            }
            (None, Some(tar)) if r.manifest.is_none() => {
                Ok(LayerSource::Tar { tar, sha256: r.sha256 })
            }
            (Some(_), None) => Err("an `oci` layer is pinned by `manifest = \"sha256:...\"`, not `sha256`".into()),
            (None, Some(_)) => Err("a `tar` layer is pinned by `sha256 = \"...\"`, not `manifest`".into()),
            _ => Err("a layer has exactly one of `oci = \"DIR\"` (with `manifest`) or `tar = \"FILE\"` (with `sha256`)".into()),
        }
    }
}
