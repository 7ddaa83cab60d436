//! `enclave-builder measure pcr`: vTPM PCR 11 (per boot phase) and PCR 4 for a UKI.
//!
//! Section flags follow `systemd-measure calculate` (each takes a file). With `--uki` the
//! sections are read from the image, and PCR 4 (firmware `LoadImage` of the UKI, then of its
//! `.linux` kernel) is printed too; with separate section files only PCR 11 is defined.

use std::borrow::Cow;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use measurements::tpm::{
    pcr11, pcr4_events, replay, uki_sections, Bank, PeFile, StubVersion, UkiSection,
};
use measurements::{Sha256Digest, Sha384Digest};
use serde_json::{json, Map, Value};

/// Options of `measure pcr` (the command line's are `cli::PcrArgs`).
#[derive(Debug, Clone)]
pub struct PcrOptions {
    /// A unified kernel image; its sections are measured as systemd-stub would.
    pub uki: Option<PathBuf>,
    /// Kernel image file → `.linux`.
    pub linux: Option<PathBuf>,
    /// os-release file → `.osrel`.
    pub osrel: Option<PathBuf>,
    /// File with the kernel command line → `.cmdline`.
    pub cmdline: Option<PathBuf>,
    /// initrd file → `.initrd`.
    pub initrd: Option<PathBuf>,
    /// Microcode initrd → `.ucode` (measured by stub ≥ 256).
    pub ucode: Option<PathBuf>,
    /// Splash bitmap → `.splash`.
    pub splash: Option<PathBuf>,
    /// Devicetree → `.dtb`.
    pub dtb: Option<PathBuf>,
    /// Kernel release string file → `.uname` (measured by stub ≥ 254).
    pub uname: Option<PathBuf>,
    /// SBAT file → `.sbat` (measured by stub ≥ 254).
    pub sbat: Option<PathBuf>,
    /// PCR signature public key → `.pcrpkey`.
    pub pcrpkey: Option<PathBuf>,
    /// PCR bank(s); repeat for several. Default: sha256 and sha384.
    pub bank: Vec<BankArg>,
    /// Version of the systemd-stub that will measure the sections.
    pub stub_version: StubArg,
    /// Print JSON instead of text.
    pub json: bool,
}

/// `--bank` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BankArg {
    /// SHA-256 bank.
    Sha256,
    /// SHA-384 bank.
    Sha384,
}

/// `--stub-version` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StubArg {
    /// systemd 252 (no `.ucode`, `.uname`, `.sbat`).
    V252,
    /// systemd 254–257.
    V257,
}

/// Runs `measure pcr`, writing the result to `out`.
pub fn run_pcr(args: &PcrOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    let stub = match args.stub_version {
        StubArg::V252 => StubVersion::Systemd252,
        StubArg::V257 => StubVersion::Systemd257,
    };
    let mut banks = args.bank.clone();
    if banks.is_empty() {
        banks = vec![BankArg::Sha256, BankArg::Sha384];
    }
    banks.sort();
    banks.dedup();

    let uki = args.uki.as_ref().map(fs_err::read).transpose()?;
    let mut owned: Vec<(UkiSection, Vec<u8>)> = Vec::new();
    let sections: Vec<(UkiSection, Cow<'_, [u8]>)> = match (&uki, &args.uki) {
        (Some(bytes), Some(path)) => {
            let pe =
                PeFile::parse(bytes).with_context(|| format!("parsing UKI {}", path.display()))?;
            uki_sections(&pe)
        }
        _ => {
            let files = [
                (UkiSection::Linux, &args.linux),
                (UkiSection::Osrel, &args.osrel),
                (UkiSection::Cmdline, &args.cmdline),
                (UkiSection::Initrd, &args.initrd),
                (UkiSection::Ucode, &args.ucode),
                (UkiSection::Splash, &args.splash),
                (UkiSection::Dtb, &args.dtb),
                (UkiSection::Uname, &args.uname),
                (UkiSection::Sbat, &args.sbat),
                (UkiSection::Pcrpkey, &args.pcrpkey),
            ];
            for (kind, path) in files {
                if let Some(path) = path {
                    owned.push((kind, fs_err::read(path)?));
                }
            }
            owned
                .iter()
                .map(|(k, d)| (*k, Cow::Borrowed(d.as_slice())))
                .collect()
        }
    };
    let refs: Vec<(UkiSection, &[u8])> = sections.iter().map(|(k, d)| (*k, d.as_ref())).collect();

    let mut result = Map::new();
    for bank in banks {
        let v = match bank {
            BankArg::Sha256 => bank_values::<Sha256Digest>(&refs, stub, uki.as_deref())?,
            BankArg::Sha384 => bank_values::<Sha384Digest>(&refs, stub, uki.as_deref())?,
        };
        result.insert(
            match bank {
                BankArg::Sha256 => "sha256",
                BankArg::Sha384 => "sha384",
            }
            .to_owned(),
            v,
        );
    }
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&Value::Object(result))?
        )?;
        return Ok(());
    }
    for (bank, v) in &result {
        for (phase, d) in v["pcr11"].as_object().into_iter().flatten() {
            writeln!(out, "11:{bank}:{phase}={}", d.as_str().unwrap_or_default())?;
        }
        if let Some(d) = v.get("pcr4").and_then(Value::as_str) {
            writeln!(out, "4:{bank}={d}")?;
        }
    }
    Ok(())
}

fn bank_values<D: Bank + serde::Serialize>(
    sections: &[(UkiSection, &[u8])],
    stub: StubVersion,
    uki: Option<&[u8]>,
) -> anyhow::Result<Value> {
    let p = pcr11::<D>(sections, stub)?;
    let mut pcr11 = Map::new();
    pcr11.insert("after-stub".to_owned(), json!(p.after_stub));
    for (phase, d) in &p.phases {
        pcr11.insert(phase.as_str().to_owned(), json!(d));
    }
    let mut v = json!({ "pcr11": pcr11 });
    if let Some(uki) = uki {
        let linux = sections
            .iter()
            .find(|(k, _)| *k == UkiSection::Linux)
            .map(|(_, d)| *d)
            .context("the UKI has no .linux section")?;
        let events = pcr4_events::<D>(&[("uki", uki), (".linux", linux)])
            .context("PCR 4: hashing the .linux kernel")?;
        v["pcr4"] = json!(replay(&events));
    }
    Ok(v)
}
