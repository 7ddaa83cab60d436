//! `enclave-builder measure tdx`: MRTD, RTMR1 and RTMR2 of a QEMU direct-boot TD.
//!
//! Flag names follow virtee/tdx-measure where it has them (`--two-pass-add-pages`). RTMR0
//! depends on the VMM's ACPI tables, TD HOB and firmware variables, which this tool does not
//! synthesise: it is printed only when a platform profile gives its event digests
//! (`--rtmr0-digests`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use measurements::tdx::{mrtd, rtmr1_events, rtmr2_events, PageAddOrder, Rtmr1Order, Tdvf};
use measurements::tpm::{Event, Register};
use measurements::Sha384Digest;
use serde_json::json;

/// Options of `measure tdx` (the command line's are `cli::TdxArgs`).
#[derive(Debug, Clone)]
pub struct TdxOptions {
    /// The OVMF (TDVF) firmware image as given to QEMU `-bios`.
    pub ovmf: PathBuf,
    /// The kernel as given to QEMU `-kernel` (its Authenticode SHA-384 goes into RTMR1; QEMU
    /// ≥ 10.1 leaves the file unpatched).
    pub kernel: Option<PathBuf>,
    /// The initrd as given to QEMU `-initrd` (its SHA-384 goes into RTMR2).
    pub initrd: Option<PathBuf>,
    /// The kernel command line as given to QEMU `-append` (empty if absent). RTMR2 measures it
    /// as OVMF hands it to the kernel: with ` initrd=initrd` appended when `--initrd` is given
    /// and not empty (edk2 X86QemuLoadImageLib, every OVMF since edk2-stable202005).
    pub append: Option<String>,
    /// Measure all page adds of a section before its extends (Intel "upstream-v5" and
    /// Canonical QEMU 8.2); default is one pass per page (upstream QEMU ≥ 9).
    pub two_pass_add_pages: bool,
    /// Position of the kernel event in RTMR1 relative to the separator (OVMF-version dependent).
    pub rtmr1_order: Rtmr1OrderArg,
    /// Platform profile for RTMR0: a file of SHA-384 event digests in log order, one hex digest
    /// per line (`#` starts a comment), e.g. taken from a reference TD's CCEL event log for the
    /// same QEMU version and VM shape. Without it RTMR0 is not printed.
    pub rtmr0_digests: Option<PathBuf>,
    /// Print JSON instead of text.
    pub json: bool,
    /// Also print the TDVF sections and every RTMR event with the running register value.
    pub transcript: bool,
}

/// `--rtmr1-order` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rtmr1OrderArg {
    /// kernel, "Calling EFI Application", separator, exit-boot-services ×2 (dstack-mr).
    KernelFirst,
    /// "Calling EFI Application", separator, kernel, exit-boot-services ×2.
    KernelAfterSeparator,
}

impl From<Rtmr1OrderArg> for Rtmr1Order {
    fn from(a: Rtmr1OrderArg) -> Self {
        match a {
            Rtmr1OrderArg::KernelFirst => Rtmr1Order::KernelFirst,
            Rtmr1OrderArg::KernelAfterSeparator => Rtmr1Order::KernelAfterSeparator,
        }
    }
}

/// Runs `measure tdx`, writing the result to `out`.
pub fn run_tdx(args: &TdxOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    let fw = fs_err::read(&args.ovmf)?;
    let tdvf = Tdvf::parse(&fw)
        .with_context(|| format!("reading TDVF metadata of {}", args.ovmf.display()))?;
    let order = if args.two_pass_add_pages {
        PageAddOrder::TwoPass
    } else {
        PageAddOrder::SinglePass
    };
    let mrtd = mrtd(&tdvf, order);
    let (rtmr1, rtmr2) = match &args.kernel {
        Some(path) => {
            let kernel = fs_err::read(path)?;
            let r1 = rtmr1_events(&kernel, args.rtmr1_order.into()).with_context(|| {
                format!("computing the Authenticode hash of {}", path.display())
            })?;
            let initrd = args.initrd.as_ref().map(fs_err::read).transpose()?;
            let r2 = rtmr2_events(args.append.as_deref().unwrap_or(""), initrd.as_deref());
            (Some(r1), Some(r2))
        }
        None => (None, None),
    };
    let rtmr0 = args
        .rtmr0_digests
        .as_ref()
        .map(|p| rtmr0_profile(p))
        .transpose()?;
    let order_name = if args.two_pass_add_pages {
        "two-pass"
    } else {
        "single-pass"
    };
    if args.json {
        let mut v = json!({ "mrtd": mrtd, "page_add_order": order_name });
        for (name, events) in [("rtmr0", &rtmr0), ("rtmr1", &rtmr1), ("rtmr2", &rtmr2)] {
            if let Some(events) = events {
                v[name] = json!(value(events));
                if args.transcript {
                    v[format!("{name}_events")] = json!(steps(events)
                        .iter()
                        .map(|(e, after)| json!({ "event": e.description, "digest": e.digest, "rtmr": after }))
                        .collect::<Vec<_>>());
                }
            }
        }
        if args.transcript {
            v["tdvf_sections"] =
                json!(tdvf.sections().iter().map(section_line).collect::<Vec<_>>());
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    if args.transcript {
        writeln!(out, "# TDVF sections (metadata order = page-add order)")?;
        for (i, s) in tdvf.sections().iter().enumerate() {
            writeln!(out, "#   {i}: {}", section_line(s))?;
        }
        writeln!(out, "# MRTD: {order_name} page add")?;
    }
    writeln!(out, "MRTD  {mrtd}")?;
    for (name, events) in [("RTMR0", &rtmr0), ("RTMR1", &rtmr1), ("RTMR2", &rtmr2)] {
        let Some(events) = events else { continue };
        if args.transcript {
            writeln!(out, "# {name} events")?;
            for (i, (e, after)) in steps(events).iter().enumerate() {
                writeln!(
                    out,
                    "#   {i}: {}\n#      digest {}\n#      {name}   {after}",
                    e.description, e.digest
                )?;
            }
        }
        writeln!(out, "{name} {}", value(events))?;
    }
    Ok(())
}

/// Reads an RTMR0 platform profile: one SHA-384 hex digest per line, `#` comments.
fn rtmr0_profile(path: &std::path::Path) -> anyhow::Result<Vec<Event<Sha384Digest>>> {
    let text = fs_err::read_to_string(path)?;
    let mut events = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let digest: Sha384Digest = line
            .parse()
            .with_context(|| format!("{}:{}: not a SHA-384 digest", path.display(), n + 1))?;
        events.push(Event {
            description: format!("RTMR0 event from platform profile line {}", n + 1),
            digest,
        });
    }
    Ok(events)
}

fn section_line(s: &measurements::tdx::TdvfSection) -> String {
    format!(
        "{:<7} gpa={:#010x} pages={:<4} data={:#x}+{:#x}{}{}",
        s.section_type.name(),
        s.memory_address,
        s.pages(),
        s.data_offset,
        s.raw_data_size,
        if s.mr_extend { " MR_EXTEND" } else { "" },
        if s.page_aug { " PAGE_AUG" } else { "" },
    )
}

fn steps(events: &[Event<Sha384Digest>]) -> Vec<(&Event<Sha384Digest>, Sha384Digest)> {
    let mut r = Register::new();
    events
        .iter()
        .map(|e| {
            r.extend(&e.digest);
            (e, r.value())
        })
        .collect()
}

fn value(events: &[Event<Sha384Digest>]) -> Sha384Digest {
    measurements::tpm::replay(events)
}
