//! The raw command line (clap derive only; no I/O). `///` comments are the `--help` text.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
        command: Box<crate::measure::MeasureCommand>,
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
        command: Box<crate::attest::AttestCommand>,
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
    Build(Box<crate::kernel::KernelBuildArgs>),
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
