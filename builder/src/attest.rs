//! `enclave-builder attest check`: attestation evidence against a published release.
//!
//! This module only reads files and formats the verdict; every decision is made by the
//! client-side `verifier` crate (the same code a client embeds). The expected values come
//! from the release's `record.json`: the launch digest of the chosen SNP profile, the TDX
//! profile's MRTD and RTMRs, or the vTPM profile's PCR 4 and PCR 11.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use measurements::record::{PlatformMeasurement, Record};
use verifier::snp::{SnpEvidence, SnpPolicy, SnpRelease, Tcb, TrustAnchors};
use verifier::tdx::{TdxPolicy, TdxRelease};
use verifier::Verdict;

/// Options of `attest check` (the command line's are `cli::AttestCheckArgs`).
#[derive(Debug)]
pub struct AttestCheckOptions {
    /// The release directory: it holds record.json.
    pub release: PathBuf,
    /// The evidence (an SEV-SNP attestation report or a TDX quote).
    pub evidence: PathBuf,
    /// The certificates: vcek.der or vcek.pem; optionally ark.pem, ask.pem, cert_chain.pem.
    pub certs: Option<PathBuf>,
    /// The client's nonce (hex) the evidence must be bound to.
    pub nonce: String,
    /// The server's public key the evidence must be bound to: SubjectPublicKeyInfo (DER or
    /// PEM `PUBLIC KEY`) or an X.509 certificate (DER or PEM).
    pub server_key: PathBuf,
    /// The record's platform profile to compare with (default: its only SNP profile).
    pub profile: Option<String>,
    /// The evidence kind (default: detected from the bytes).
    pub kind: Option<EvidenceKind>,
    /// The lowest acceptable reported TCB, e.g. `bootloader=3,tee=0,snp=8,microcode=115`
    /// (Turin also `fmc=N`); components not named are 0.
    pub min_tcb: String,
    /// The VMPL the report must come from.
    pub vmpl: u32,
    /// Require the guest policy to allow SMT (`on`) or forbid it (`off`); default: either.
    pub smt: Option<OnOff>,
    /// TDX: the quote's DCAP collateral (JSON `QuoteCollateralV3`, as a PCCS serves it).
    pub collateral: Option<PathBuf>,
    /// TDX: the time to check the collateral's validity at, in seconds since the Unix epoch
    /// (default: now).
    pub time: Option<u64>,
    /// TDX: the platform TCB statuses accepted (comma-separated).
    pub tcb_status: Vec<String>,
    /// TDX: the exact XFAM required (16 hex digits, as in the quote); default: not checked.
    pub xfam: Option<String>,
    /// TDX: RTMR0 of the declared platform profile (96 hex digits); default: not checked.
    pub rtmr0: Option<String>,
    /// vTPM: the quote's signature (TPMT_SIGNATURE, `tpm2_quote --signature`).
    pub signature: Option<PathBuf>,
    /// vTPM: the attestation key's public key (SubjectPublicKeyInfo, PEM or DER).
    pub ak: Option<PathBuf>,
    /// vTPM: another sha256 PCR the quote must cover, with its expected value (repeatable).
    pub pcr: Vec<String>,
    /// Print the verdict as JSON on stdout.
    pub json: bool,
}

/// The kinds of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceKind {
    /// An AMD SEV-SNP attestation report.
    Snp,
    /// An Intel TDX quote (version 4 or 5), with --collateral.
    Tdx,
    /// A vTPM quote (TPMS_ATTEST), with --signature and --ak.
    Tpm,
}

/// A required setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnOff {
    /// Must be on.
    On,
    /// Must be off.
    Off,
}

/// At least one check failed (exit code 8).
#[derive(Debug, thiserror::Error)]
#[error("attestation check failed: {count} check(s) did not pass ({names})")]
pub struct AttestationFailed {
    /// How many checks failed.
    pub count: usize,
    /// Their names, comma-separated.
    pub names: String,
}

/// Runs `attest check`: the evidence against the release, every check printed.
pub fn check(args: &AttestCheckOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    let record_path = args.release.join("record.json");
    let record: Record = serde_json::from_slice(
        &fs_err::read(&record_path).context("reading the release's record")?,
    )
    .with_context(|| format!("{} is not a build record", record_path.display()))?;
    let evidence = fs_err::read(&args.evidence)?;
    let kind = match args.kind {
        Some(k) => k,
        None => detect(&evidence).with_context(|| {
            format!(
                "{}: not an SEV-SNP report, TDX quote or TPM quote; name it with --kind",
                args.evidence.display()
            )
        })?,
    };
    let nonce = hex::decode(args.nonce.trim())
        .with_context(|| format!("--nonce {:?} is not hex", args.nonce))?;
    let key_bytes = fs_err::read(&args.server_key)?;
    let spki = verifier::binding::server_key_der(&key_bytes).with_context(|| {
        format!(
            "{}: not a public key (SubjectPublicKeyInfo) or certificate, DER or PEM",
            args.server_key.display()
        )
    })?;
    let binding = verifier::binding::report_data(&spki, &nonce);
    if kind == EvidenceKind::Tdx {
        return check_tdx(args, &record, &evidence, &binding, out);
    }
    if kind == EvidenceKind::Tpm {
        return check_tpm(args, &record, &evidence, &binding, out);
    }
    let release = snp_release(&record, args.profile.as_deref(), &evidence)?;
    let certs = args
        .certs
        .as_deref()
        .context("SEV-SNP needs the VCEK: pass --certs DIR holding vcek.der or vcek.pem")?;
    let certs = Certs::read(certs)?;
    let policy = SnpPolicy {
        min_tcb: parse_tcb(&args.min_tcb)?,
        vmpl: args.vmpl,
        smt: args.smt.map(|s| s == OnOff::On),
    };
    let ev = SnpEvidence {
        report: &evidence,
        vcek: &certs.vcek,
        ark: certs.ark.as_deref(),
        ask: certs.ask.as_deref(),
    };
    let verdict = verifier::snp::verify(&ev, &TrustAnchors::amd(), &release, &policy, &binding);
    render(&verdict, "snp", &release.profile, args.json, out)?;
    finish(&verdict)
}

/// A command-line option's value that is not the fixed-length hex it must be.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{option} {text:?}: expected {digits} hex digits ({bytes} bytes), but {problem}")]
struct HexOptionError {
    /// The option, e.g. `--xfam`.
    option: String,
    /// The value as given (trimmed).
    text: String,
    /// How many hex digits the option takes.
    digits: usize,
    /// How many bytes they make.
    bytes: usize,
    /// What is wrong with `text`.
    problem: HexProblem,
}

/// What is wrong with a fixed-length hex value.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum HexProblem {
    /// All hex digits, but not as many as expected.
    #[error("it has {0}")]
    Length(usize),
    /// A character that is not a hex digit (position counted from 1).
    #[error("character {position} ({character:?}) is not a hex digit")]
    NotHex {
        /// Where, counted in characters from 1.
        position: usize,
        /// The character.
        character: char,
    },
}

/// Parses `text` (surrounding whitespace ignored) as exactly `N` bytes of hex, for `option`.
fn fixed_hex<const N: usize>(option: &str, text: &str) -> Result<[u8; N], HexOptionError> {
    let text = text.trim();
    let err = |problem| HexOptionError {
        option: option.to_owned(),
        text: text.to_owned(),
        digits: 2 * N,
        bytes: N,
        problem,
    };
    if let Some((i, c)) = text
        .chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii_hexdigit())
    {
        return Err(err(HexProblem::NotHex {
            position: i + 1,
            character: c,
        }));
    }
    // All ASCII hex digits now, so only the length can be wrong.
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|_| err(HexProblem::Length(text.len())))?;
    Ok(out)
}

fn finish(verdict: &Verdict) -> anyhow::Result<()> {
    if verdict.passed() {
        Ok(())
    } else {
        let names: Vec<_> = verdict.failures().map(|c| c.name.as_str()).collect();
        Err(AttestationFailed {
            count: names.len(),
            names: names.join(", "),
        }
        .into())
    }
}

fn check_tdx(
    args: &AttestCheckOptions,
    record: &Record,
    quote: &[u8],
    binding: &[u8; 64],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let collateral = args
        .collateral
        .as_deref()
        .context("a TDX quote needs its DCAP collateral: pass --collateral FILE (JSON)")?;
    let collateral = fs_err::read(collateral)?;
    let now = match args.time {
        Some(t) => t,
        // The verification time only decides whether the collateral is current; it never
        // reaches an artifact.
        #[allow(clippy::disallowed_methods)]
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("the clock is before 1970")?
            .as_secs(),
    };
    let release = tdx_release(record, args.profile.as_deref())?;
    let xfam = args
        .xfam
        .as_deref()
        .map(|h| fixed_hex::<8>("--xfam", h))
        .transpose()?;
    let rtmr0 = args
        .rtmr0
        .as_deref()
        .map(|h| fixed_hex::<48>("--rtmr0", h))
        .transpose()?;
    let policy = TdxPolicy {
        accepted_tcb_status: args.tcb_status.clone(),
        xfam,
        rtmr0,
        ..TdxPolicy::default()
    };
    let verdict = verifier::tdx::verify(quote, &collateral, now, &release, &policy, binding);
    render(&verdict, "tdx", &release.profile, args.json, out)?;
    finish(&verdict)
}

fn check_tpm(
    args: &AttestCheckOptions,
    record: &Record,
    attest: &[u8],
    binding: &[u8; 64],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let signature = args
        .signature
        .as_deref()
        .context("a vTPM quote needs its signature: pass --signature FILE (TPMT_SIGNATURE)")?;
    let signature = fs_err::read(signature)?;
    let ak = args.ak.as_deref().context(
        "a vTPM quote needs the attestation key: pass --ak FILE (public key, PEM or DER)",
    )?;
    let ak = fs_err::read(ak)?;
    let mut release = tpm_release(record, args.profile.as_deref())?;
    for p in &args.pcr {
        let (n, v) = p
            .split_once('=')
            .with_context(|| format!("--pcr {p:?} is not N=HEX"))?;
        let n: u32 = n
            .trim()
            .parse()
            .ok()
            .filter(|n| *n < 24 && *n != 4 && *n != 11)
            .with_context(|| {
                format!(
                    "--pcr {p:?}: N must be 0..23 other than 4 and 11 (those come from the record)"
                )
            })?;
        let value = fixed_hex::<32>(&format!("--pcr {n} (sha256)"), v)?;
        release.other.insert(n, value);
    }
    let evidence = verifier::tpm::TpmEvidence {
        attest,
        signature: &signature,
        ak: &ak,
    };
    let verdict = verifier::tpm::verify(
        &evidence,
        &release,
        &verifier::binding::tpm_qualifying_data(binding),
    );
    render(&verdict, "tpm", &release.profile, args.json, out)?;
    finish(&verdict)
}

/// The chosen vTPM profile's predicted PCR 4 and PCR 11.
fn tpm_release(
    record: &Record,
    profile: Option<&str>,
) -> anyhow::Result<verifier::tpm::TpmRelease> {
    let all: Vec<_> = record
        .measurements
        .iter()
        .filter_map(|m| match &m.platform {
            PlatformMeasurement::Vtpm { pcr4, pcr11, .. } => Some(verifier::tpm::TpmRelease {
                profile: m.profile.clone(),
                pcr4: pcr4.0,
                pcr11: pcr11.0,
                other: Default::default(),
            }),
            _ => None,
        })
        .collect();
    let names: Vec<&str> = all.iter().map(|r| r.profile.as_str()).collect();
    let chosen = choose_profile(&names, profile, "vTPM")?;
    Ok(all
        .iter()
        .find(|r| r.profile == chosen)
        .cloned()
        .expect("chosen from these"))
}

/// The chosen TDX profile's MRTD, RTMR1 and RTMR2.
fn tdx_release(record: &Record, profile: Option<&str>) -> anyhow::Result<TdxRelease> {
    let tdx: Vec<_> = record
        .measurements
        .iter()
        .filter_map(|m| match &m.platform {
            PlatformMeasurement::Tdx {
                mrtd, rtmr1, rtmr2, ..
            } => Some(TdxRelease {
                profile: m.profile.clone(),
                mrtd: mrtd.0,
                rtmr1: rtmr1.0,
                rtmr2: rtmr2.0,
            }),
            _ => None,
        })
        .collect();
    let names: Vec<&str> = tdx.iter().map(|r| r.profile.as_str()).collect();
    let chosen = choose_profile(&names, profile, "TDX")?;
    Ok(tdx
        .iter()
        .find(|r| r.profile == chosen)
        .cloned()
        .expect("chosen from these"))
}

/// The profile to check against: `--profile NAME` if the record has it, else the record's only
/// profile of this kind. `names` are the record's profiles of the kind, in record order (a
/// name may repeat: one SEV-SNP entry per vCPU count).
fn choose_profile<'r>(
    names: &[&'r str],
    profile: Option<&str>,
    kind: &str,
) -> anyhow::Result<&'r str> {
    let mut distinct = names.to_vec();
    distinct.dedup();
    let list = || distinct.join(", ");
    match profile {
        Some(p) => distinct.iter().copied().find(|n| *n == p).with_context(|| {
            format!(
                "the record has no {kind} profile {p:?} ({kind} profiles: {})",
                list()
            )
        }),
        None => match distinct.as_slice() {
            [one] => Ok(one),
            [] => bail!("the record has no {kind} profile"),
            _ => bail!(
                "the record has several {kind} profiles ({}); choose one with --profile",
                list()
            ),
        },
    }
}

fn render(
    v: &Verdict,
    kind: &str,
    profile: &str,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if json {
        let doc = serde_json::json!({
            "evidence": kind,
            "profile": profile,
            "passed": v.passed(),
            "checks": v.checks(),
        });
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        writeln!(out)?;
    } else {
        write!(out, "{v}")?;
        let verdict = if v.passed() { "PASSED" } else { "FAILED" };
        writeln!(out, "attestation vs profile {profile}: {verdict}")?;
    }
    Ok(())
}

/// Detects the evidence kind from its first bytes.
fn detect(bytes: &[u8]) -> Option<EvidenceKind> {
    let u16le = |o: usize| Some(u16::from_le_bytes(bytes.get(o..o + 2)?.try_into().ok()?));
    let u32le = |o: usize| Some(u32::from_le_bytes(bytes.get(o..o + 4)?.try_into().ok()?));
    if bytes.len() == verifier::snp::REPORT_LEN && u32le(0).is_some_and(|v| (2..=5).contains(&v)) {
        return Some(EvidenceKind::Snp);
    }
    // TDX quote: version 4 or 5, attestation key type 2 (ECDSA P-256), TEE type 0x81.
    if matches!(u16le(0), Some(4 | 5)) && u16le(2) == Some(2) && u32le(4) == Some(0x81) {
        return Some(EvidenceKind::Tdx);
    }
    // TPMS_ATTEST: magic TPM_GENERATED_VALUE 0xff544347, big-endian.
    if bytes.starts_with(&[0xff, 0x54, 0x43, 0x47]) {
        return Some(EvidenceKind::Tpm);
    }
    None
}

/// The chosen SNP profile's launch digest. A profile measured for several vCPU counts has one
/// entry per count: the one whose digest the report carries is chosen (the report does not say
/// its vCPU count), or else the first, so the verdict names an expected value either way.
fn snp_release(
    record: &Record,
    profile: Option<&str>,
    report: &[u8],
) -> anyhow::Result<SnpRelease> {
    let snp: Vec<_> = record
        .measurements
        .iter()
        .filter_map(|m| match &m.platform {
            PlatformMeasurement::Snp {
                launch_digest,
                vcpus,
                ..
            } => Some((m.profile.as_str(), *vcpus, launch_digest.0)),
            _ => None,
        })
        .collect();
    let names: Vec<&str> = snp.iter().map(|(n, _, _)| *n).collect();
    let chosen = choose_profile(&names, profile, "SEV-SNP")?;
    let entries: Vec<_> = snp.iter().filter(|(n, _, _)| *n == chosen).collect();
    let reported = verifier::snp::Report::parse(report)
        .ok()
        .map(|r| r.measurement);
    let (_, vcpus, digest) = entries
        .iter()
        .find(|(_, _, d)| Some(*d) == reported)
        .or(entries.first())
        .context("the record's SEV-SNP profile has no measurement")?;
    Ok(SnpRelease {
        profile: if entries.len() > 1 {
            format!("{chosen} ({vcpus} vCPUs)")
        } else {
            chosen.to_owned()
        },
        launch_digest: *digest,
    })
}

/// `bootloader=3,tee=0,snp=8,microcode=115[,fmc=N]`.
fn parse_tcb(s: &str) -> anyhow::Result<Tcb> {
    let mut tcb = Tcb::default();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .with_context(|| format!("--min-tcb: {part:?} is not NAME=N"))?;
        let v: u8 = v
            .parse()
            .with_context(|| format!("--min-tcb: {v:?} is not a number 0..255"))?;
        match k {
            "bootloader" => tcb.bootloader = v,
            "tee" => tcb.tee = v,
            "snp" => tcb.snp = v,
            "microcode" => tcb.microcode = v,
            "fmc" => tcb.fmc = v,
            _ => bail!("--min-tcb: unknown component {k:?} (bootloader, tee, snp, microcode, fmc)"),
        }
    }
    Ok(tcb)
}

/// The certificates found in `--certs DIR`.
struct Certs {
    vcek: Vec<u8>,
    ark: Option<Vec<u8>>,
    ask: Option<Vec<u8>>,
}

impl Certs {
    fn read(dir: &Path) -> anyhow::Result<Self> {
        let first = |names: &[&str]| -> anyhow::Result<Option<Vec<u8>>> {
            for n in names {
                let p = dir.join(n);
                if p.exists() {
                    return Ok(Some(fs_err::read(p)?));
                }
            }
            Ok(None)
        };
        let vcek = first(&["vcek.der", "vcek.pem", "vcek.crt"])?.with_context(|| {
            format!(
                "{}: no vcek.der or vcek.pem (fetch the VCEK for this chip and TCB from the AMD KDS)",
                dir.display()
            )
        })?;
        let mut ark = first(&["ark.pem", "ark.der"])?;
        let mut ask = first(&["ask.pem", "ask.der"])?;
        if let Some(chain) = first(&["cert_chain.pem"])? {
            // The KDS serves ASK then ARK.
            let text = String::from_utf8(chain).context("cert_chain.pem is not text")?;
            let end = "-----END CERTIFICATE-----";
            let cut = text
                .find(end)
                .map(|i| i + end.len())
                .context("cert_chain.pem holds no certificate")?;
            let (first_pem, second_pem) = text.split_at(cut);
            ask.get_or_insert_with(|| first_pem.as_bytes().to_vec());
            if second_pem.contains("-----BEGIN") {
                ark.get_or_insert_with(|| second_pem.as_bytes().to_vec());
            }
        }
        Ok(Self { vcek, ark, ask })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_hex_takes_exactly_n_bytes_of_hex() {
        assert_eq!(
            fixed_hex::<8>("--xfam", " e702060000000000\n"),
            Ok([0xe7, 0x02, 0x06, 0, 0, 0, 0, 0])
        );
        assert_eq!(fixed_hex::<2>("--x", "aBcD"), Ok([0xab, 0xcd]));
    }

    #[test]
    fn fixed_hex_names_the_option_the_length_and_the_problem() {
        let short = fixed_hex::<48>("--rtmr0", "abc").unwrap_err();
        assert_eq!(
            short.to_string(),
            "--rtmr0 \"abc\": expected 96 hex digits (48 bytes), but it has 3"
        );
        let long = fixed_hex::<2>("--x", "abcdef").unwrap_err();
        assert_eq!(long.problem, HexProblem::Length(6));
        let not_hex = fixed_hex::<8>("--xfam", "0xe702060000000000").unwrap_err();
        assert_eq!(
            not_hex.to_string(),
            "--xfam \"0xe702060000000000\": expected 16 hex digits (8 bytes), \
             but character 2 ('x') is not a hex digit"
        );
        // Non-ASCII is a character, not a byte, position.
        let accent = fixed_hex::<2>("--x", "aé00").unwrap_err();
        assert_eq!(
            accent.problem,
            HexProblem::NotHex {
                position: 2,
                character: 'é'
            }
        );
    }
}
