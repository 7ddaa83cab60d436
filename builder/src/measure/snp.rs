//! `measure snp`: the SEV-SNP launch digest, with sev-snp-measure's flag names so users can
//! switch between the two tools.

use std::io::Write;
use std::num::NonZeroU32;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use measurements::snp::{self, CpuSignature, Firmware, KernelHashes, SnpInputs, VcpuType, Vmm};
use measurements::Sha384Digest;

/// Options of `measure snp` (the command line's are `cli::SnpArgs`).
#[derive(Debug, Clone)]
pub struct SnpOptions {
    /// OVMF image to measure (the whole `OVMF.fd` / `OVMF.amdsev.fd` given to QEMU's -bios).
    pub ovmf: PathBuf,
    /// Kernel for measured direct boot (QEMU `-kernel` with `kernel-hashes=on`).
    pub kernel: Option<PathBuf>,
    /// Initrd (QEMU `-initrd`); needs --kernel.
    pub initrd: Option<PathBuf>,
    /// Kernel command line (QEMU `-append`); needs --kernel.
    pub append: Option<String>,
    /// Number of guest vCPUs (required except in `sev` and `snp:ovmf-hash` modes).
    pub vcpus: Option<NonZeroU32>,
    /// QEMU vCPU model: EPYC, EPYC-Rome, EPYC-Milan, EPYC-Genoa, EPYC-Turin, or a -vN alias.
    pub vcpu_type: Option<VcpuType>,
    /// Raw vCPU CPUID(1).EAX signature (0x-prefixed hex or decimal).
    pub vcpu_sig: Option<u32>,
    /// vCPU family (with --vcpu-model and --vcpu-stepping).
    pub vcpu_family: Option<u32>,
    /// vCPU model number.
    pub vcpu_model: Option<u32>,
    /// vCPU stepping.
    pub vcpu_stepping: Option<u32>,
    /// VMSA SEV_FEATURES (0x1 = SNP active; 0x21 if the host's kvm_amd has debug_swap on).
    pub guest_features: u64,
    /// Hypervisor: QEMU (also `qemu`), ec2 or gce.
    pub vmm_type: VmmKind,
    /// Guest mode.
    pub mode: SnpMode,
    /// Precomputed OVMF hash (hex SHA-384) to start from, as printed by `--mode snp:ovmf-hash`.
    pub snp_ovmf_hash: Option<Sha384Digest>,
    /// Digest output format.
    pub output_format: OutputFormat,
    /// Print a JSON object `{"mode", "measurement"[, "transcript"]}` instead of a bare line.
    pub json: bool,
    /// Print every measured page group (type, GPA range, pages, contents and running digest)
    /// before the digest. SNP modes only.
    pub transcript: bool,
}

/// The guest mode, named as sev-snp-measure names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnpMode {
    /// SEV-SNP launch digest (SHA-384).
    Snp,
    /// SEV-ES launch digest (SHA-256).
    Seves,
    /// SEV launch digest (SHA-256).
    Sev,
    /// Only the firmware pages: the OVMF hash to pass later as --snp-ovmf-hash.
    SnpOvmfHash,
}

/// How the digest is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Lowercase hex.
    Hex,
    /// Standard base64 with padding.
    Base64,
}

/// The hypervisor named by --vmm-type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmmKind {
    /// QEMU/KVM.
    Qemu,
    /// AWS EC2.
    Ec2,
    /// Google Compute Engine.
    Gce,
}

/// `--vmm-type`: `QEMU` (or `qemu`), `ec2` or `gce`.
pub fn parse_vmm(s: &str) -> Result<VmmKind, String> {
    match s {
        "QEMU" | "qemu" => Ok(VmmKind::Qemu),
        "ec2" => Ok(VmmKind::Ec2),
        "gce" => Ok(VmmKind::Gce),
        _ => Err(format!(
            "unknown VMM type '{s}' (expected QEMU, ec2 or gce)"
        )),
    }
}

/// An integer in Python `int(s, 0)` syntax: decimal, or 0x/0o/0b-prefixed.
pub fn parse_u64(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let lower = t.to_ascii_lowercase();
    let r = if let Some(h) = lower.strip_prefix("0x") {
        u64::from_str_radix(h, 16)
    } else if let Some(o) = lower.strip_prefix("0o") {
        u64::from_str_radix(o, 8)
    } else if let Some(b) = lower.strip_prefix("0b") {
        u64::from_str_radix(b, 2)
    } else {
        lower.parse()
    };
    r.map_err(|e| format!("invalid integer {s:?}: {e}"))
}

/// [`parse_u64`], for a value that must fit 32 bits.
pub fn parse_u32(s: &str) -> Result<u32, String> {
    u32::try_from(parse_u64(s)?).map_err(|_| format!("{s:?} does not fit in 32 bits"))
}

impl SnpOptions {
    fn mode_name(&self) -> &'static str {
        match self.mode {
            SnpMode::Snp => "snp",
            SnpMode::Seves => "seves",
            SnpMode::Sev => "sev",
            SnpMode::SnpOvmfHash => "snp:ovmf-hash",
        }
    }

    /// The VMM, resolving the vCPU signature with sev-snp-measure's precedence:
    /// family/model/stepping, then --vcpu-sig, then --vcpu-type. As in the reference, a
    /// family or signature of 0 counts as not given.
    fn vmm(&self) -> anyhow::Result<Vmm> {
        Ok(match self.vmm_type {
            VmmKind::Ec2 => Vmm::Ec2,
            VmmKind::Gce => Vmm::Gce,
            VmmKind::Qemu => {
                let sig = if let (Some(f), Some(m), Some(s)) = (
                    self.vcpu_family.filter(|f| *f != 0),
                    self.vcpu_model,
                    self.vcpu_stepping,
                ) {
                    CpuSignature::from_family_model_stepping(f, m, s)
                } else if let Some(sig) = self.vcpu_sig.filter(|s| *s != 0) {
                    CpuSignature(sig)
                } else if let Some(t) = self.vcpu_type {
                    t.signature()
                } else {
                    bail!(
                        "missing --vcpu-type or --vcpu-sig or --vcpu-family in guest mode '{}'",
                        self.mode_name()
                    )
                };
                Vmm::Qemu(sig)
            }
        })
    }

    fn vcpus(&self) -> anyhow::Result<NonZeroU32> {
        self.vcpus
            .with_context(|| format!("missing --vcpus N in guest mode '{}'", self.mode_name()))
    }

    fn kernel_hashes(&self) -> anyhow::Result<Option<KernelHashes>> {
        let Some(kernel) = &self.kernel else {
            return Ok(None);
        };
        let kernel = fs_err::read(kernel)?;
        let initrd = self.initrd.as_ref().map(fs_err::read).transpose()?;
        Ok(Some(KernelHashes::from_bytes(
            &kernel,
            initrd.as_deref(),
            self.append.as_deref(),
        )))
    }
}

/// Runs `measure snp`.
pub(super) fn run(args: &SnpOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    let bytes = fs_err::read(&args.ovmf)?;
    let fw = Firmware::parse(&bytes)
        .with_context(|| format!("parsing firmware {}", args.ovmf.display()))?;
    if args.snp_ovmf_hash.is_some() && !matches!(args.mode, SnpMode::Snp | SnpMode::SnpOvmfHash) {
        bail!("--snp-ovmf-hash only works with --mode snp");
    }
    if args.transcript && !matches!(args.mode, SnpMode::Snp | SnpMode::SnpOvmfHash) {
        bail!("--transcript is only available in the snp and snp:ovmf-hash modes");
    }

    let (digest, transcript, format): (Vec<u8>, _, _) = match args.mode {
        SnpMode::SnpOvmfHash => {
            let g = snp::measure_ovmf(&fw, args.transcript);
            // sev-snp-measure prints the OVMF hash in hex whatever --output-format says.
            (
                g.launch_digest().0.to_vec(),
                g.transcript().cloned(),
                OutputFormat::Hex,
            )
        }
        SnpMode::Snp => {
            let inputs = SnpInputs {
                firmware: &fw,
                ovmf_hash: args.snp_ovmf_hash,
                kernel_hashes: args.kernel_hashes()?,
                vcpus: args.vcpus()?,
                vmm: args.vmm()?,
                guest_features: args.guest_features,
            };
            let g = snp::snp_launch(&inputs, args.transcript)?;
            (
                g.launch_digest().0.to_vec(),
                g.transcript().cloned(),
                args.output_format,
            )
        }
        SnpMode::Seves => {
            let (vcpus, vmm) = (args.vcpus()?, args.vmm()?);
            let d = snp::seves_launch_digest(&fw, args.kernel_hashes()?.as_ref(), vcpus, vmm)?;
            (d.0.to_vec(), None, args.output_format)
        }
        SnpMode::Sev => {
            let d = snp::sev_launch_digest(&fw, args.kernel_hashes()?.as_ref())?;
            (d.0.to_vec(), None, args.output_format)
        }
    };
    let text = match format {
        OutputFormat::Hex => hex::encode(&digest),
        OutputFormat::Base64 => base64(&digest),
    };
    if args.json {
        let mut o = serde_json::Map::new();
        o.insert("mode".into(), args.mode_name().into());
        o.insert("measurement".into(), text.into());
        if let Some(t) = transcript {
            o.insert("transcript".into(), t.to_string().into());
        }
        writeln!(out, "{}", serde_json::Value::Object(o))?;
    } else {
        if let Some(t) = transcript {
            write!(out, "{t}")?;
        }
        writeln!(out, "{text}")?;
    }
    Ok(())
}

/// Standard base64 (RFC 4648 §4) with `=` padding.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        // RFC 4648 §10 test vectors.
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn integers_parse_like_python_int_base_0() {
        assert_eq!(parse_u64("0x21"), Ok(0x21));
        assert_eq!(parse_u64("33"), Ok(33));
        assert!(parse_u32("0x100000000").is_err());
    }
}
