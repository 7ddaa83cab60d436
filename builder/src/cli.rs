//! The raw command line (clap derive only; no I/O). `///` comments are the `--help` text.

use std::path::PathBuf;

use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{attest, kernel, measure, release};

/// Build bit-identical confidential-VM images from a pinned manifest and compute the launch
/// measurements the hardware will report for them.
///
/// Exit codes: 0 success; 1 the build or command failed; 2 usage error; 3 an input was
/// refused (missing or wrong pin, corrupt or hostile layer, bad manifest); 4 not reproducible
/// (`check`: the two builds differ; `verify`: same inputs, other artifacts); 5 `verify`: the
/// rebuild used other inputs than the published record; 6 `verify`: launch measurements differ;
/// 7 `lint` found errors; 8 `attest check`: a check failed; 9 `release check`: the release
/// does not satisfy the policy; 10 `push`/`pull`: the registry or the transfer failed.
#[derive(Debug, Parser)]
#[command(name = "enclave-builder", version, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the image a manifest describes.
    ///
    /// Writes DIR/rootfs.img (EROFS root file system with its dm-verity hash tree appended),
    /// DIR/disk-NAME.img for each data disk (same format), DIR/cmdline (the kernel command
    /// line, with every verity root hash), DIR/vmlinuz, DIR/initrd.img, DIR/OVMF.fd,
    /// DIR/run-qemu.sh (local QEMU boot) and DIR/record.json (inputs with their contents,
    /// outputs, verity parameters, launch measurements per platform profile). The directory
    /// is assembled beside DIR and renamed into place only when complete. Progress goes to
    /// stderr.
    Build(BuildArgs),
    /// CI gate: build the manifest twice under different conditions and compare every artifact.
    ///
    /// The two builds run as separate processes of this binary. Build B differs from build A
    /// by every enabled variation: clock (faketime -f +3y, if installed), tz, locale (LC_ALL),
    /// umask, path (working and output directories), tmpdir, home, threads
    /// (RAYON_NUM_THREADS=1 vs at least 4), order (a no-op: the builder enumerates no
    /// directory). Differences are reported by format: a path and field inside the EROFS
    /// file system or the dm-verity area, a JSON path in record.json, a character offset in
    /// cmdline, a byte offset and ELF/PE section elsewhere.
    ///
    /// Exit codes: 0 every artifact identical; 4 not reproducible; 1 a build failed.
    Check(CheckArgs),
    /// Rebuild from the manifest and compare with a published record.json.
    ///
    /// Compares every input digest, artifact digest, rootfs/verity/cmdline field and launch
    /// measurement, and names each mismatch by JSON path with both values. The rebuild goes
    /// to a temporary directory under TMPDIR.
    ///
    /// With `--attest KEY`, a successful verification (and only that) also writes a signed
    /// rebuild attestation (DSSE envelope, in-toto statement, predicateType
    /// `urn:enclave-builder:rebuild:v1`) over the published outputs and record.json, and the
    /// key's public half beside it; put both in the release directory, where `release check`
    /// counts them for policies that require rebuilders.
    ///
    /// Exit codes: 0 verified; 5 the inputs differ (the rebuilder has other inputs); 4 same
    /// inputs, other artifacts (not reproducible); 6 only measurements differ; 3 an input
    /// was refused (or the attestation key is not a key); 1 the rebuild failed.
    Verify(VerifyArgs),
    /// Generate a signing key: KEY (PKCS#8 PEM, mode 0600) and KEY.pub (SPKI PEM).
    ///
    /// Ed25519 by default, ECDSA P-256 with `--algorithm p256`. Prints the key's
    /// fingerprint, `sha256:<hex of the SPKI DER>`, the form a client policy pins. Never
    /// overwrites an existing file. Keep KEY offline or in a secret store; publish KEY.pub.
    Keygen(KeygenArgs),
    /// Sign a build output directory as a release.
    ///
    /// Checks that DIR holds exactly the files record.json lists as outputs (names, sizes,
    /// sha256) and refuses otherwise, naming the file. Then writes, each renamed into place
    /// when complete: DIR/release.intoto.json, a DSSE envelope (payloadType
    /// application/vnd.in-toto+json) holding an in-toto Statement v1 whose subjects are every
    /// file of DIR (record.json included; *.intoto.json and *.pub excluded) with its sha256,
    /// whose predicateType is `urn:enclave-builder:release:v1` and whose predicate is
    /// record.json; DIR/provenance.intoto.json, SLSA provenance v1 over the same subjects;
    /// and DIR/publisher-<fingerprint prefix>.pub. No artifact is changed.
    ///
    /// Exit codes: 0 signed; 3 DIR is not the recorded build output, or KEY is not a key.
    Sign(SignArgs),
    /// Check a signed release against a client policy, or compare two releases.
    Release {
        /// What to do.
        #[command(subcommand)]
        command: ReleaseCommand,
    },
    /// Check a manifest for unpinned inputs, build-time Python bytecode and host-dependent files.
    ///
    /// Reports every input without a pin (with the exact TOML line to add, holding the digest
    /// of the file as found), wrong pins, missing files and Rust workspaces without
    /// Cargo.lock; timestamp-based `.pyc` files in layers, wheels and files; per-host or
    /// per-build paths (/etc/machine-id, SSH host keys, logs, caches...) and inputs read from
    /// absolute host paths or /proc, /sys, /dev, /tmp. Nothing is built.
    ///
    /// Exit codes: 0 no errors (warnings and notes allowed); 7 errors found; 3 the manifest
    /// itself cannot be parsed.
    Lint(LintArgs),
    /// Compute a launch measurement from the files a VMM loads.
    ///
    /// Pure computation: nothing is built. `snp` takes sev-snp-measure's flags, `tdx` prints
    /// MRTD and RTMR1/2, `pcr` predicts vTPM PCR 11 and PCR 4 for a UKI. `--json` everywhere.
    Measure {
        /// The platform.
        #[command(subcommand)]
        command: Box<MeasureCommand>,
    },
    /// Publish a release directory to an OCI registry as one artifact.
    ///
    /// DIR is a build output (its files must match record.json's `outputs`) plus any
    /// `*.intoto.json` DSSE envelopes (release.intoto.json, provenance.intoto.json,
    /// rebuild-HEX.intoto.json). Each file becomes one layer of a single OCI image manifest
    /// (artifactType application/vnd.enclave-builder.release.v1, sorted by name, titled by
    /// file name); each envelope is attached as a referrer of it. Blobs the registry already
    /// has are not uploaded again; an interrupted push completes when rerun. Prints the
    /// release manifest digest (sha256:...) as the last line.
    ///
    /// Credentials are read as container tools read them: $REGISTRY_AUTH_FILE, then
    /// $XDG_RUNTIME_DIR/containers/auth.json, then ~/.docker/config.json (`auths.HOST.auth`).
    /// Plain HTTP is used only for registries on 127.0.0.0/8 or localhost.
    ///
    /// Exit codes: 0 pushed; 3 the directory or reference was refused; 10 the registry or the
    /// transfer failed (wrong credentials, network).
    Push(PushArgs),
    /// Fetch a release by digest into a new directory, checking every byte.
    ///
    /// REF must name the digest (HOST/REPO@sha256:HEX). Every manifest and blob is checked
    /// against its digest and size while streaming into `.DIR.partial-*` beside DIR, which is
    /// renamed to DIR only when complete: any failure leaves no DIR. Attached envelopes are
    /// written under their file names.
    ///
    /// Exit codes: 0 pulled; 3 refused (no digest, DIR exists, a file name with `/` or `..`,
    /// duplicate names, not a release); 10 the registry or the transfer failed (unknown digest,
    /// bytes that do not match their digest, wrong credentials, network).
    Pull(PullArgs),
    /// Check attestation evidence (an SEV-SNP report) against a published release.
    Attest {
        /// What to do.
        #[command(subcommand)]
        command: Box<AttestCommand>,
    },
    /// Build the guest kernel reproducibly from pinned source and `kernel-config/`.
    Kernel {
        /// What to do.
        #[command(subcommand)]
        command: KernelCommand,
    },
}

/// `release` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Check a release directory against a policy; print each check and the measurements to pin.
    ///
    /// The policy (TOML) names `publisher_keys` and `rebuilder_keys` (each a path to a .pub
    /// file, relative to the policy file, or a fingerprint `sha256:<hex>`; a key pinned by
    /// fingerprint must come with the release as a .pub file), `rebuilders_required`
    /// (default 0) and optionally `predicate_type`. The release holds when the release
    /// statement is signed by a publisher key, its subjects are exactly the directory's files
    /// with their sha256, record.json is the signed predicate, any provenance is signed by a
    /// publisher over the same subjects, and at least `rebuilders_required` distinct trusted
    /// rebuilders signed a rebuild statement over exactly the same subjects.
    ///
    /// Exit codes: 0 the policy holds; 9 it does not (the failed checks are printed; missing
    /// rebuilders are named by fingerprint); 3 the policy or a key file is unreadable.
    Check(ReleaseCheckArgs),
    /// Show which inputs, artifacts, launch measurements and command line changed between two
    /// releases (record.json files or release directories), and which did not.
    ///
    /// Inputs are matched by kind and identity (layer source, file path in the image, wheel
    /// name, Rust package, kernel, firmware), artifacts by file name, measurements by profile
    /// and field (SNP launch_digest; TDX mrtd, rtmr1, rtmr2; the profile's firmware).
    /// Exit code 0 whether or not they differ.
    Diff(ReleaseDiffArgs),
}

/// `keygen` arguments.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// The private key file to create (KEY.pub is created beside it).
    #[arg(long, value_name = "KEY")]
    pub out: PathBuf,
    /// The key type.
    #[arg(long, value_enum, default_value = "ed25519")]
    pub algorithm: crate::release::keys::KeyAlgorithm,
    /// Print what was written as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `sign` arguments.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The build output directory (as `build --out DIR` wrote it).
    pub dir: PathBuf,
    /// The publisher's private key (PKCS#8 PEM, from `keygen`).
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// Print what was written (files, fingerprint, subjects) as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `release check` arguments.
#[derive(Debug, clap::Args)]
pub struct ReleaseCheckArgs {
    /// The release: a directory (build output, release.intoto.json, provenance.intoto.json,
    /// rebuild-*.intoto.json and the signers' *.pub), or a published release
    /// `HOST[:PORT]/REPOSITORY@sha256:HEX`, pulled (every digest checked) into a temporary
    /// directory under TMPDIR first. An existing directory of that name wins.
    pub source: PathBuf,
    /// With a registry SOURCE: speak plain HTTP to any registry (tests only; loopback
    /// registries get plain HTTP anyway).
    #[arg(long)]
    pub insecure_http: bool,
    /// The client policy (TOML).
    #[arg(long, value_name = "POLICY")]
    pub policy: PathBuf,
    /// Print the verdict (every check, the fingerprints, the pinned measurements) as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `release diff` arguments.
#[derive(Debug, clap::Args)]
pub struct ReleaseDiffArgs {
    /// The older release (record.json or its directory).
    pub old: PathBuf,
    /// The newer release.
    pub new: PathBuf,
    /// Print the difference as JSON (schema `enclave-builder.release-diff.v1`).
    #[arg(long)]
    pub json: bool,
}

/// `kernel` subcommands.
#[derive(Debug, Subcommand)]
pub enum KernelCommand {
    /// Compile the pinned kernel source with the checked-in config (about 10 minutes on two
    /// cores), cached by the digest of every input. Prints the bzImage's sha256.
    Build(Box<KernelBuildArgs>),
}

/// `build` arguments.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The manifest (TOML). Paths inside it are relative to its own directory.
    pub manifest: PathBuf,
    /// The output directory to create.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Print the record as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Replace DIR if it holds a previous build output.
    #[arg(long)]
    pub force: bool,
    /// No progress messages on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `lint` arguments.
#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// The manifest (TOML).
    pub manifest: PathBuf,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `check` arguments.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The manifest (TOML).
    pub manifest: PathBuf,
    /// Keep both builds in DIR (created, must be empty): DIR/a/out and DIR/b/.../output.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Apply only these variations (comma-separated: clock, tz, locale, umask, path, tmpdir,
    /// home, threads, order).
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        conflicts_with = "no_vary"
    )]
    pub vary: Option<Vec<crate::check::Variation>>,
    /// Apply every variation except these (comma-separated).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub no_vary: Option<Vec<crate::check::Variation>>,
    /// No progress messages on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `verify` arguments.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The manifest (TOML) the published image was built from.
    pub manifest: PathBuf,
    /// The published record.json.
    #[arg(long, value_name = "FILE")]
    pub record: PathBuf,
    /// After a successful verification, sign a rebuild attestation with this private key.
    #[arg(long, value_name = "KEY")]
    pub attest: Option<PathBuf>,
    /// Where to write the attestation [default: rebuild-<first 16 hex of the key's
    /// fingerprint>.intoto.json in the current directory]; the public key goes beside it.
    #[arg(long, value_name = "FILE", requires = "attest")]
    pub attest_out: Option<PathBuf>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress messages on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `push` arguments.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// The release directory (with --attach: the envelope file).
    pub dir: PathBuf,
    /// Where to: HOST[:PORT]/REPOSITORY[:TAG] (with --attach: REF@sha256:HEX of the release).
    pub reference: String,
    /// Attach DIR (a single *.intoto.json envelope) to the existing release REF@sha256:...
    #[arg(long)]
    pub attach: bool,
    /// Use plain HTTP for any registry. Test-only: loopback registries use HTTP anyway, and
    /// over HTTP credentials and content travel unprotected.
    #[arg(long)]
    pub insecure_http: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress messages on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `pull` arguments.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// The release: HOST[:PORT]/REPOSITORY[:TAG]@sha256:HEX.
    pub reference: String,
    /// The directory to create (must not exist).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Use plain HTTP for any registry (test-only; see `push --help`).
    #[arg(long)]
    pub insecure_http: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress messages on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Implements [`clap::ValueEnum`] for a plain enum of another module, so that module stays
/// free of clap: each variant's command-line name and `--help` text.
macro_rules! value_enum {
    ($t:ty { $($v:path => $name:literal: $help:literal),+ $(,)? }) => {
        impl ValueEnum for $t {
            fn value_variants<'a>() -> &'a [Self] {
                &[$($v),+]
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(match self {
                    $($v => PossibleValue::new($name).help($help)),+
                })
            }
        }
    };
}

/// `impl From<$args> for $options`: a command line's arguments become the plain options of the
/// module that runs the subcommand, field by field (the same names on both sides).
macro_rules! options_from {
    ($from:ty => $to:ty { $($field:ident),+ $(,)? }) => {
        impl From<$from> for $to {
            fn from(a: $from) -> Self {
                Self {
                    $($field: a.$field),+
                }
            }
        }
    };
}

/// `measure` subcommands.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum MeasureCommand {
    /// AMD SEV-SNP / SEV-ES / SEV launch digest (flags as in sev-snp-measure 0.0.13).
    Snp(SnpArgs),
    /// Intel TDX MRTD, RTMR1 and RTMR2 for direct boot with OVMF (TDVF).
    Tdx(TdxArgs),
    /// vTPM PCR 11 (systemd-stub, per UKI section and boot phase) and PCR 4.
    Pcr(PcrArgs),
}

impl From<MeasureCommand> for measure::MeasureOptions {
    fn from(c: MeasureCommand) -> Self {
        match c {
            MeasureCommand::Snp(a) => Self::Snp(a.into()),
            MeasureCommand::Tdx(a) => Self::Tdx(a.into()),
            MeasureCommand::Pcr(a) => Self::Pcr(a.into()),
        }
    }
}

/// Arguments of `measure snp`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Output: the digest on stdout, one line, formatted as sev-snp-measure 0.0.13 prints it (hex by \
default; `snp:ovmf-hash` is always hex, as in the reference). With --transcript the transcript \
is written to stdout BEFORE the digest line (with --json it is the \"transcript\" field).")]
pub struct SnpArgs {
    /// OVMF image to measure (the whole `OVMF.fd` / `OVMF.amdsev.fd` given to QEMU's -bios).
    #[arg(long, value_name = "PATH")]
    pub ovmf: PathBuf,
    /// Kernel for measured direct boot (QEMU `-kernel` with `kernel-hashes=on`).
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Initrd (QEMU `-initrd`); needs --kernel.
    #[arg(long, value_name = "PATH", requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// Kernel command line (QEMU `-append`); needs --kernel.
    #[arg(
        long,
        value_name = "CMDLINE",
        requires = "kernel",
        allow_hyphen_values = true
    )]
    pub append: Option<String>,
    /// Number of guest vCPUs (required except in `sev` and `snp:ovmf-hash` modes).
    #[arg(long, value_name = "N")]
    pub vcpus: Option<std::num::NonZeroU32>,
    /// QEMU vCPU model: EPYC, EPYC-Rome, EPYC-Milan, EPYC-Genoa, EPYC-Turin, or a -vN alias.
    #[arg(long, value_name = "CPUTYPE")]
    pub vcpu_type: Option<measurements::snp::VcpuType>,
    /// Raw vCPU CPUID(1).EAX signature (0x-prefixed hex or decimal).
    #[arg(long, value_name = "VALUE", value_parser = measure::parse_u32)]
    pub vcpu_sig: Option<u32>,
    /// vCPU family (with --vcpu-model and --vcpu-stepping).
    #[arg(long, value_name = "FAMILY", requires_all = ["vcpu_model", "vcpu_stepping"])]
    pub vcpu_family: Option<u32>,
    /// vCPU model number.
    #[arg(long, value_name = "MODEL", requires = "vcpu_family")]
    pub vcpu_model: Option<u32>,
    /// vCPU stepping.
    #[arg(long, value_name = "STEPPING", requires = "vcpu_family")]
    pub vcpu_stepping: Option<u32>,
    /// VMSA SEV_FEATURES (0x1 = SNP active; 0x21 if the host's kvm_amd has debug_swap on).
    #[arg(long, value_name = "VALUE", value_parser = measure::parse_u64, default_value = "0x1")]
    pub guest_features: u64,
    /// Hypervisor: QEMU (also `qemu`), ec2 or gce.
    #[arg(long, value_name = "VMMTYPE", value_parser = measure::parse_vmm, default_value = "QEMU")]
    pub vmm_type: measure::VmmKind,
    /// Guest mode.
    #[arg(long, value_enum, default_value = "snp")]
    pub mode: measure::SnpMode,
    /// Precomputed OVMF hash (hex SHA-384) to start from, as printed by `--mode snp:ovmf-hash`.
    #[arg(long, value_name = "HASH")]
    pub snp_ovmf_hash: Option<measurements::Sha384Digest>,
    /// Digest output format.
    #[arg(long, value_enum, default_value = "hex")]
    pub output_format: measure::OutputFormat,
    /// Print a JSON object `{"mode", "measurement"[, "transcript"]}` instead of a bare line.
    #[arg(long)]
    pub json: bool,
    /// Print every measured page group (type, GPA range, pages, contents and running digest)
    /// before the digest. SNP modes only.
    #[arg(long)]
    pub transcript: bool,
}

options_from!(SnpArgs => measure::SnpOptions {
    ovmf, kernel, initrd, append, vcpus, vcpu_type, vcpu_sig, vcpu_family, vcpu_model,
    vcpu_stepping, guest_features, vmm_type, mode, snp_ovmf_hash, output_format, json,
    transcript,
});

/// Arguments of `measure tdx`.
#[derive(Debug, Clone, Args)]
pub struct TdxArgs {
    /// The OVMF (TDVF) firmware image as given to QEMU `-bios`.
    #[arg(long, value_name = "FILE")]
    pub ovmf: PathBuf,
    /// The kernel as given to QEMU `-kernel` (its Authenticode SHA-384 goes into RTMR1; QEMU
    /// ≥ 10.1 leaves the file unpatched).
    #[arg(long, value_name = "FILE")]
    pub kernel: Option<PathBuf>,
    /// The initrd as given to QEMU `-initrd` (its SHA-384 goes into RTMR2).
    #[arg(long, value_name = "FILE", requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// The kernel command line as given to QEMU `-append` (empty if absent). RTMR2 measures it
    /// as OVMF hands it to the kernel: with ` initrd=initrd` appended when `--initrd` is given
    /// and not empty (edk2 X86QemuLoadImageLib, every OVMF since edk2-stable202005).
    #[arg(long, value_name = "CMDLINE", requires = "kernel")]
    pub append: Option<String>,
    /// Measure all page adds of a section before its extends (Intel "upstream-v5" and
    /// Canonical QEMU 8.2); default is one pass per page (upstream QEMU ≥ 9).
    #[arg(long)]
    pub two_pass_add_pages: bool,
    /// Position of the kernel event in RTMR1 relative to the separator (OVMF-version dependent).
    #[arg(long, value_enum, default_value_t = measure::tdx::Rtmr1OrderArg::KernelFirst)]
    pub rtmr1_order: measure::tdx::Rtmr1OrderArg,
    /// Platform profile for RTMR0: a file of SHA-384 event digests in log order, one hex digest
    /// per line (`#` starts a comment), e.g. taken from a reference TD's CCEL event log for the
    /// same QEMU version and VM shape. Without it RTMR0 is not printed.
    #[arg(long, value_name = "FILE")]
    pub rtmr0_digests: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also print the TDVF sections and every RTMR event with the running register value.
    #[arg(long)]
    pub transcript: bool,
}

options_from!(TdxArgs => measure::tdx::TdxOptions {
    ovmf, kernel, initrd, append, two_pass_add_pages, rtmr1_order, rtmr0_digests, json,
    transcript,
});

/// Arguments of `measure pcr`.
#[derive(Debug, Clone, Args)]
pub struct PcrArgs {
    /// A unified kernel image; its sections are measured as systemd-stub would.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "linux",
        conflicts_with = "linux"
    )]
    pub uki: Option<PathBuf>,
    /// Kernel image file → `.linux`.
    #[arg(long, value_name = "FILE")]
    pub linux: Option<PathBuf>,
    /// os-release file → `.osrel`.
    #[arg(long, value_name = "FILE", requires = "linux")]
    pub osrel: Option<PathBuf>,
    /// File with the kernel command line → `.cmdline`.
    #[arg(long, value_name = "FILE", requires = "linux")]
    pub cmdline: Option<PathBuf>,
    /// initrd file → `.initrd`.
    #[arg(long, value_name = "FILE", requires = "linux")]
    pub initrd: Option<PathBuf>,
    /// Microcode initrd → `.ucode` (measured by stub ≥ 256).
    #[arg(long, value_name = "FILE", requires = "linux")]
    pub ucode: Option<PathBuf>,
    /// Splash bitmap → `.splash`.
    #[arg(long, value_name = "FILE", requires = "linux")]
    pub splash: Option<PathBuf>,
    /// Devicetree → `.dtb`.
    #[arg(long, value_name = "FILE", requires = "linux")]
    pub dtb: Option<PathBuf>,
    /// Kernel release string file → `.uname` (measured by stub ≥ 254).
    #[arg(long, value_name = "FILE", requires = "linux")]
    pub uname: Option<PathBuf>,
    /// SBAT file → `.sbat` (measured by stub ≥ 254).
    #[arg(long, value_name = "FILE", requires = "linux")]
    pub sbat: Option<PathBuf>,
    /// PCR signature public key → `.pcrpkey`.
    #[arg(long, value_name = "FILE", requires = "linux")]
    pub pcrpkey: Option<PathBuf>,
    /// PCR bank(s); repeat for several. Default: sha256 and sha384.
    #[arg(long, value_enum)]
    pub bank: Vec<measure::pcr::BankArg>,
    /// Version of the systemd-stub that will measure the sections.
    #[arg(long, value_enum, default_value_t = measure::pcr::StubArg::V257)]
    pub stub_version: measure::pcr::StubArg,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

options_from!(PcrArgs => measure::pcr::PcrOptions {
    uki, linux, osrel, cmdline, initrd, ucode, splash, dtb, uname, sbat, pcrpkey, bank,
    stub_version, json,
});

/// `kernel build` arguments.
#[derive(Debug, Clone, Args)]
pub struct KernelBuildArgs {
    /// The Debian `linux-source-6.12` package (.deb).
    #[arg(long, value_name = "DEB")]
    pub source: PathBuf,
    /// Its expected sha256 (hex); the build refuses any other file.
    #[arg(long, value_name = "HEX")]
    pub source_sha256: measurements::Sha256Digest,
    /// Directory holding the resolved config (`config-6.12`), e.g. kernel-config.
    #[arg(long, value_name = "DIR")]
    pub config_dir: PathBuf,
    /// Where to write the bzImage.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Cache directory: results are kept under DIR/<input digest>/bzImage.
    #[arg(long, value_name = "DIR", default_value = kernel::DEFAULT_CACHE)]
    pub cache: PathBuf,
    /// Parallel make jobs (default: the number of CPUs). Does not change the result.
    #[arg(long, value_name = "N")]
    pub jobs: Option<std::num::NonZeroUsize>,
    /// SOURCE_DATE_EPOCH: the build timestamp the kernel embeds.
    #[arg(long, value_name = "N", default_value_t = kernel::DEFAULT_EPOCH)]
    pub epoch: u64,
}

options_from!(KernelBuildArgs => kernel::KernelBuildOptions {
    source, source_sha256, config_dir, out, cache, jobs, epoch,
});

value_enum!(measure::SnpMode {
    measure::SnpMode::Snp => "snp": "SEV-SNP launch digest (SHA-384)",
    measure::SnpMode::Seves => "seves": "SEV-ES launch digest (SHA-256)",
    measure::SnpMode::Sev => "sev": "SEV launch digest (SHA-256)",
    measure::SnpMode::SnpOvmfHash => "snp:ovmf-hash":
        "Only the firmware pages: the OVMF hash to pass later as --snp-ovmf-hash",
});
value_enum!(measure::OutputFormat {
    measure::OutputFormat::Hex => "hex": "Lowercase hex",
    measure::OutputFormat::Base64 => "base64": "Standard base64 with padding",
});
value_enum!(measure::tdx::Rtmr1OrderArg {
    measure::tdx::Rtmr1OrderArg::KernelFirst => "kernel-first":
        "kernel, \"Calling EFI Application\", separator, exit-boot-services ×2 (dstack-mr)",
    measure::tdx::Rtmr1OrderArg::KernelAfterSeparator => "kernel-after-separator":
        "\"Calling EFI Application\", separator, kernel, exit-boot-services ×2",
});
value_enum!(measure::pcr::BankArg {
    measure::pcr::BankArg::Sha256 => "sha256": "SHA-256 bank",
    measure::pcr::BankArg::Sha384 => "sha384": "SHA-384 bank",
});
value_enum!(measure::pcr::StubArg {
    measure::pcr::StubArg::V252 => "252": "systemd 252 (no `.ucode`, `.uname`, `.sbat`)",
    measure::pcr::StubArg::V257 => "257": "systemd 254–257",
});
value_enum!(release::keys::KeyAlgorithm {
    release::keys::KeyAlgorithm::Ed25519 =>
        "ed25519": "Ed25519 (RFC 8032): small, fast, deterministic signatures. The default",
    release::keys::KeyAlgorithm::P256 =>
        "p256": "ECDSA over NIST P-256 with SHA-256, for HSMs and policies that require it",
});
/// `attest` subcommands.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum AttestCommand {
    /// Check attestation evidence against a release: signature and certificate chain,
    /// launch measurement, guest policy, TCB, VMPL and the session binding.
    ///
    /// TDX: EVIDENCE is the quote (version 4 or 5); --collateral FILE is its DCAP collateral
    /// (JSON); the quote and collateral must chain to Intel's root at --time (default now);
    /// MRTD, RTMR1 and RTMR2 must equal the record's TDX profile, RTMR3 and MRCONFIGID,
    /// MROWNER, MROWNERCONFIG must be zero, TD attributes DEBUG clear, REPORTDATA the binding.
    ///
    /// SEV-SNP: EVIDENCE is the 1184-byte attestation report; --certs DIR holds the VCEK
    /// (vcek.der or vcek.pem, from the AMD KDS or the host's certificate table) and,
    /// optionally, the ARK and ASK the host served (ark.pem, ask.pem or cert_chain.pem);
    /// those must equal AMD's, which are pinned in the verifier. REPORT_DATA must equal
    /// SHA-512("enclave-builder attestation v1\0" || SHA-256(server key SPKI DER) || nonce)
    /// (docs/verifying.md).
    ///
    /// vTPM: EVIDENCE is the quote's attestation data (TPMS_ATTEST, `tpm2_quote --message`);
    /// --signature FILE its TPMT_SIGNATURE (`tpm2_quote --signature`), --ak FILE the
    /// attestation key's public key (PEM or DER SubjectPublicKeyInfo, `tpm2_createak -f pem`)
    /// the client trusts. The signature must verify with the AK (ECDSA P-256 or RSASSA, SHA-256),
    /// extraData must equal the first 32 bytes of the binding, and the quote must select
    /// exactly sha256 PCRs 4 and 11 (plus each --pcr N=HEX) with pcrDigest = SHA-256 of the
    /// record's vTPM profile's PCR 4 and PCR 11 (and those values) in PCR order.
    ///
    /// Every check is printed with what was expected and what was found.
    ///
    /// Exit codes: 0 every check passed; 8 at least one check failed; 1 the inputs could
    /// not be read (no record.json, no such profile, no VCEK, collateral, signature or AK).
    Check(AttestCheckArgs),
}

/// `attest check` arguments.
#[derive(Debug, Args)]
pub struct AttestCheckArgs {
    /// The release directory: it holds record.json.
    #[arg(long, value_name = "DIR")]
    pub release: PathBuf,
    /// The evidence (an SEV-SNP attestation report, a TDX quote or a vTPM quote's TPMS_ATTEST).
    #[arg(long, value_name = "FILE")]
    pub evidence: PathBuf,
    /// The certificates: vcek.der or vcek.pem; optionally ark.pem, ask.pem, cert_chain.pem.
    #[arg(long, value_name = "DIR")]
    pub certs: Option<PathBuf>,
    /// The client's nonce (hex) the evidence must be bound to.
    #[arg(long, value_name = "HEX")]
    pub nonce: String,
    /// The server's public key the evidence must be bound to: SubjectPublicKeyInfo (DER or
    /// PEM `PUBLIC KEY`) or an X.509 certificate (DER or PEM).
    #[arg(long, value_name = "FILE")]
    pub server_key: PathBuf,
    /// The record's platform profile to compare with (default: its only SNP profile).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// The evidence kind (default: detected from the bytes).
    #[arg(long, value_enum)]
    pub kind: Option<attest::EvidenceKind>,
    /// The lowest acceptable reported TCB, e.g. `bootloader=3,tee=0,snp=8,microcode=115`
    /// (Turin also `fmc=N`); components not named are 0.
    #[arg(long, value_name = "LIST", default_value = "")]
    pub min_tcb: String,
    /// The VMPL the report must come from.
    #[arg(long, default_value_t = 0)]
    pub vmpl: u32,
    /// Require the guest policy to allow SMT (`on`) or forbid it (`off`); default: either.
    #[arg(long, value_enum)]
    pub smt: Option<attest::OnOff>,
    /// TDX: the quote's DCAP collateral (JSON `QuoteCollateralV3`, as a PCCS serves it).
    #[arg(long, value_name = "FILE")]
    pub collateral: Option<PathBuf>,
    /// TDX: the time to check the collateral's validity at, in seconds since the Unix epoch
    /// (default: now).
    #[arg(long, value_name = "SECONDS")]
    pub time: Option<u64>,
    /// TDX: the platform TCB statuses accepted (comma-separated).
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "UpToDate"
    )]
    pub tcb_status: Vec<String>,
    /// TDX: the exact XFAM required (16 hex digits, as in the quote); default: not checked.
    #[arg(long, value_name = "HEX")]
    pub xfam: Option<String>,
    /// TDX: RTMR0 of your platform profile (96 hex digits): the VMM's firmware configuration
    /// and ACPI tables for this VM shape, which the image does not decide (so the record has
    /// no RTMR0); take it from a VM of that shape on a host you trust. Default: not checked.
    #[arg(long, value_name = "HEX")]
    pub rtmr0: Option<String>,
    /// vTPM: the quote's signature (TPMT_SIGNATURE, `tpm2_quote --signature`).
    #[arg(long, value_name = "FILE")]
    pub signature: Option<PathBuf>,
    /// vTPM: the attestation key's public key (SubjectPublicKeyInfo, PEM or DER).
    #[arg(long, value_name = "FILE")]
    pub ak: Option<PathBuf>,
    /// vTPM: another sha256 PCR the quote must cover, with its expected value (repeatable).
    #[arg(long, value_name = "N=HEX")]
    pub pcr: Vec<String>,
    /// Print the verdict as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

options_from!(AttestCheckArgs => attest::AttestCheckOptions {
    release, evidence, certs, nonce, server_key, profile, kind, min_tcb, vmpl, smt, collateral,
    time, tcb_status, xfam, rtmr0, signature, ak, pcr, json,
});

value_enum!(attest::EvidenceKind {
    attest::EvidenceKind::Snp => "snp": "An AMD SEV-SNP attestation report",
    attest::EvidenceKind::Tdx => "tdx": "An Intel TDX quote (version 4 or 5), with --collateral",
    attest::EvidenceKind::Tpm => "tpm": "A vTPM quote (TPMS_ATTEST), with --signature and --ak",
});
value_enum!(attest::OnOff {
    attest::OnOff::On => "on": "Must be on",
    attest::OnOff::Off => "off": "Must be off",
});
