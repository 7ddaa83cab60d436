//! AMD SEV-SNP: an attestation report, its certificate chain and a pinned release.
//!
//! [`verify`] takes the report bytes, the VCEK the caller fetched (and optionally the ARK
//! and ASK the host served), the pinned [`TrustAnchors`], the release's launch digest and the
//! caller's [`SnpPolicy`], plus the 64-byte binding the client expects in `REPORT_DATA`
//! ([`crate::binding`]). It returns a [`Verdict`] with one named check per decision:
//!
//! | check | passes when |
//! |---|---|
//! | `snp.report` | the bytes are 1184 long |
//! | `snp.version` | `VERSION` is 2, 3 or 5 |
//! | `snp.signature_algo` | `SIGNATURE_ALGO` is 1 (ECDSA P-384 SHA-384) |
//! | `snp.signing_key` | `SIGNING_KEY` is 0 (VCEK; VLEK is not supported) |
//! | `snp.chain.ark` | the pinned ARK for the VCEK's product is self-signed; an ARK the caller passed is that one |
//! | `snp.chain.ask` | the pinned ASK is signed by the ARK; an ASK the caller passed is that one |
//! | `snp.chain.vcek` | the VCEK is signed by the pinned ASK |
//! | `snp.signature` | bytes 0..0x2A0 carry a valid ECDSA P-384 signature by the VCEK |
//! | `snp.vcek.tcb` | the VCEK's TCB extensions equal `REPORTED_TCB` |
//! | `snp.vcek.chip_id` | the VCEK's hwID equals `CHIP_ID` |
//! | `snp.measurement` | `MEASUREMENT` equals the release's launch digest |
//! | `snp.policy.debug` | `POLICY` bit 19 (DEBUG) is clear |
//! | `snp.policy.migrate_ma` | `POLICY` bit 18 (MIGRATE_MA) is clear |
//! | `snp.policy.smt` | `POLICY` bit 16 (SMT) is as the policy declares (only if it declares) |
//! | `snp.policy.reserved` | bit 17 is set and no bit above 25 is |
//! | `snp.tcb` | every component of `REPORTED_TCB` is at least the policy's minimum |
//! | `snp.vmpl` | `VMPL` equals the policy's (0 by default) |
//! | `snp.report_data` | `REPORT_DATA` equals the expected binding |

mod chain;
pub(crate) mod reader;
mod report;

use alloc::format;
use alloc::string::{String, ToString as _};
use core::fmt;

use der::Decode as _;
use p384::ecdsa::signature::Verifier as _;
use sha2::Digest as _;
use x509_cert::Certificate;

pub use chain::{CertError, Product, TrustAnchor, TrustAnchors};
pub use report::{GuestPolicy, Report, ReportError, KNOWN_VERSIONS, REPORT_LEN, SIGNED_LEN};

use crate::Verdict;

/// What the caller passes: the report and the certificates it fetched.
#[derive(Debug, Clone, Copy)]
pub struct SnpEvidence<'a> {
    /// The 1184-byte `ATTESTATION_REPORT`.
    pub report: &'a [u8],
    /// The VCEK certificate (DER or PEM), from the AMD KDS or the host's certificate table.
    pub vcek: &'a [u8],
    /// The ARK the host served, if any; it must equal the pinned one.
    pub ark: Option<&'a [u8]>,
    /// The ASK the host served, if any; it must equal the pinned one.
    pub ask: Option<&'a [u8]>,
}

/// What the release pins (from the record's SNP profile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpRelease {
    /// The profile's name (for messages).
    pub profile: String,
    /// The launch digest the report's `MEASUREMENT` must equal.
    pub launch_digest: [u8; 48],
}

/// What the client requires beyond the release.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnpPolicy {
    /// The lowest acceptable `REPORTED_TCB`, component by component.
    pub min_tcb: Tcb,
    /// The VMPL the report must come from (0: the guest kernel itself).
    pub vmpl: u32,
    /// Whether the guest policy must allow SMT (`Some(true)`), forbid it (`Some(false)`),
    /// or either (`None`).
    pub smt: Option<bool>,
}

/// A TCB version split into its security patch levels.
///
/// Milan and Genoa lay the `u64` out as bootloader (byte 0), TEE (1), SNP (6), microcode
/// (7); Turin as FMC (0), bootloader (1), TEE (2), SNP (3), microcode (7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct Tcb {
    /// Boot loader SPL.
    pub bootloader: u8,
    /// PSP OS (TEE) SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// Microcode SPL.
    pub microcode: u8,
    /// FMC SPL (Turin; 0 elsewhere).
    pub fmc: u8,
}

impl Tcb {
    /// Splits a TCB version as `product` lays it out.
    pub fn decode(raw: u64, product: Product) -> Self {
        let b = raw.to_le_bytes();
        match product {
            Product::Milan | Product::Genoa => Self {
                bootloader: b[0],
                tee: b[1],
                snp: b[6],
                microcode: b[7],
                fmc: 0,
            },
            Product::Turin => Self {
                fmc: b[0],
                bootloader: b[1],
                tee: b[2],
                snp: b[3],
                microcode: b[7],
            },
        }
    }

    /// Whether every component is at least `min`'s.
    pub fn at_least(&self, min: &Tcb) -> bool {
        self.bootloader >= min.bootloader
            && self.tee >= min.tee
            && self.snp >= min.snp
            && self.microcode >= min.microcode
            && self.fmc >= min.fmc
    }
}

impl fmt::Display for Tcb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bootloader={} tee={} snp={} microcode={} fmc={}",
            self.bootloader, self.tee, self.snp, self.microcode, self.fmc
        )
    }
}

/// Lowercase hex of bytes, for check values.
pub(crate) struct Hex<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Checks an SEV-SNP report against a release, a policy and the expected binding.
pub fn verify(
    evidence: &SnpEvidence<'_>,
    anchors: &TrustAnchors,
    release: &SnpRelease,
    policy: &SnpPolicy,
    report_data: &[u8; 64],
) -> Verdict {
    let mut v = Verdict::default();
    let report = match Report::parse(evidence.report) {
        Ok(r) => r,
        Err(ReportError::UnknownVersion { version }) => {
            v.record("snp.version", false, "2, 3 or 5", version);
            return v;
        }
        Err(e) => {
            v.record(
                "snp.report",
                false,
                format!("{REPORT_LEN} bytes"),
                format!("{e}"),
            );
            return v;
        }
    };
    v.record("snp.version", true, "2, 3 or 5", report.version);
    v.check("snp.signature_algo", 1, report.signature_algo);
    v.check(
        "snp.signing_key",
        "0 (VCEK)",
        signing_key_name(report.signing_key()),
    );

    let product = check_chain(&mut v, evidence, anchors, &report);

    v.check(
        "snp.measurement",
        Hex(&release.launch_digest),
        Hex(&report.measurement),
    );
    check_policy(&mut v, &report, policy);
    let tcb = Tcb::decode(report.reported_tcb, product.unwrap_or(Product::Milan));
    v.record(
        "snp.tcb",
        tcb.at_least(&policy.min_tcb),
        format!("at least {}", policy.min_tcb),
        tcb,
    );
    v.check("snp.vmpl", policy.vmpl, report.vmpl);
    v.check(
        "snp.report_data",
        Hex(report_data),
        Hex(&report.report_data),
    );
    v
}

fn signing_key_name(k: u32) -> String {
    match k {
        0 => "0 (VCEK)".into(),
        1 => "1 (VLEK)".into(),
        7 => "7 (none)".into(),
        k => format!("{k} (reserved)"),
    }
}

/// The chain and signature checks; returns the product of the anchor that matched.
fn check_chain(
    v: &mut Verdict,
    evidence: &SnpEvidence<'_>,
    anchors: &TrustAnchors,
    report: &Report,
) -> Option<Product> {
    let vcek = match chain::parse_cert("vcek", evidence.vcek) {
        Ok(c) => c,
        Err(e) => {
            v.record("snp.chain.vcek", false, "a VCEK certificate", e);
            v.record("snp.signature", false, "signed by the VCEK", "no VCEK");
            return None;
        }
    };
    let issuer = vcek.tbs_certificate.issuer.to_string();
    let found = anchors.anchors().iter().find_map(|a| {
        let ask = Certificate::from_der(&a.ask).ok()?;
        (ask.tbs_certificate.subject == vcek.tbs_certificate.issuer).then_some((a, ask))
    });
    let product = match found {
        None => {
            v.record(
                "snp.chain.ark",
                false,
                "a pinned ARK",
                format!("no pinned ASK is named {issuer}"),
            );
            v.record(
                "snp.chain.vcek",
                false,
                "issued by a pinned ASK",
                format!("issued by {issuer}"),
            );
            None
        }
        Some((anchor, ask)) => {
            check_anchor(v, evidence, anchor, &ask, &vcek);
            Some(anchor.product)
        }
    };

    match chain::p384_key(&vcek) {
        Err(e) => v.record("snp.signature", false, "signed by the VCEK", e),
        Ok(key) => {
            let ok = report_signature(report)
                .zip(evidence.report.get(..SIGNED_LEN))
                .is_some_and(|(sig, signed)| key.verify(signed, &sig).is_ok());
            v.record(
                "snp.signature",
                ok,
                "valid ECDSA P-384 SHA-384 by the VCEK",
                if ok { "valid" } else { "invalid" },
            );
        }
    }

    let layout = product.unwrap_or(Product::Milan);
    let reported = Tcb::decode(report.reported_tcb, layout);
    let spl = |s| chain::spl(&vcek, s);
    let vcek_tcb = (|| {
        Some(Tcb {
            bootloader: spl("3.1")?,
            tee: spl("3.2")?,
            snp: spl("3.3")?,
            microcode: spl("3.8")?,
            fmc: if layout == Product::Turin {
                spl("3.9")?
            } else {
                0
            },
        })
    })();
    match vcek_tcb {
        Some(t) => v.check("snp.vcek.tcb", reported, t),
        None => v.record(
            "snp.vcek.tcb",
            false,
            reported,
            "VCEK lacks a TCB extension",
        ),
    }
    let want_id: &[u8] = if layout == Product::Turin {
        report.chip_id.get(..8).unwrap_or(&[])
    } else {
        &report.chip_id
    };
    match chain::hwid(&vcek) {
        Some(id) => v.check("snp.vcek.chip_id", Hex(want_id), Hex(&id)),
        None => v.record(
            "snp.vcek.chip_id",
            false,
            Hex(want_id),
            "VCEK lacks the hwID extension",
        ),
    }
    product
}

fn check_anchor(
    v: &mut Verdict,
    evidence: &SnpEvidence<'_>,
    anchor: &TrustAnchor,
    ask: &Certificate,
    vcek: &Certificate,
) {
    let fingerprint = |der: &[u8]| format!("sha256:{}", Hex(&sha2::Sha256::digest(der)));
    let pinned = format!(
        "pinned {} ARK {}",
        anchor.product.name(),
        fingerprint(&anchor.ark)
    );
    let ark = Certificate::from_der(&anchor.ark);
    let ark_ok = ark
        .as_ref()
        .map_err(|e| format!("{e}"))
        .and_then(|a| chain::rsa_pss_signed_by(a, a));
    let host_ark = evidence.ark.map(|b| chain::canonical_der("ark", b));
    match (&ark_ok, host_ark) {
        (Err(e), _) => v.record("snp.chain.ark", false, &pinned, e),
        (Ok(()), None) => v.record("snp.chain.ark", true, &pinned, &pinned),
        (Ok(()), Some(Err(e))) => v.record("snp.chain.ark", false, &pinned, e),
        (Ok(()), Some(Ok(der))) => {
            let same = der == anchor.ark;
            let actual = if same {
                pinned.clone()
            } else {
                format!("caller's ARK {}", fingerprint(&der))
            };
            v.record("snp.chain.ark", same, &pinned, actual);
        }
    }

    let pinned_ask = format!("pinned {} ASK signed by the ARK", anchor.product.name());
    let ask_ok = ark
        .as_ref()
        .map_err(|e| format!("{e}"))
        .and_then(|a| chain::rsa_pss_signed_by(ask, a));
    let host_ask = evidence.ask.map(|b| chain::canonical_der("ask", b));
    match (ask_ok, host_ask) {
        (Err(e), _) => v.record("snp.chain.ask", false, &pinned_ask, e),
        (Ok(()), Some(Err(e))) => v.record("snp.chain.ask", false, &pinned_ask, e),
        (Ok(()), Some(Ok(der))) if der != anchor.ask => v.record(
            "snp.chain.ask",
            false,
            &pinned_ask,
            format!("caller's ASK {}", fingerprint(&der)),
        ),
        (Ok(()), _) => v.record("snp.chain.ask", true, &pinned_ask, &pinned_ask),
    }

    match chain::rsa_pss_signed_by(vcek, ask) {
        Ok(()) => v.record(
            "snp.chain.vcek",
            true,
            "signed by the ASK",
            "signed by the ASK",
        ),
        Err(e) => v.record("snp.chain.vcek", false, "signed by the ASK", e),
    }
}

/// The report's (r, s) as a P-384 signature: each 72-byte little-endian field holds the
/// scalar in its low 48 bytes; the high 24 must be zero.
fn report_signature(report: &Report) -> Option<p384::ecdsa::Signature> {
    let scalar = |le: &[u8; 72]| -> Option<[u8; 48]> {
        let (low, high) = le.split_at(48);
        if high.iter().any(|&b| b != 0) {
            return None;
        }
        let mut be: [u8; 48] = low.try_into().ok()?;
        be.reverse();
        Some(be)
    };
    let r = scalar(&report.signature_r)?;
    let s = scalar(&report.signature_s)?;
    p384::ecdsa::Signature::from_scalars(r, s).ok()
}

fn check_policy(v: &mut Verdict, report: &Report, policy: &SnpPolicy) {
    let p = report.policy;
    let onoff = |b: bool| if b { "on" } else { "off" };
    v.check("snp.policy.debug", "off", onoff(p.has(GuestPolicy::DEBUG)));
    v.check(
        "snp.policy.migrate_ma",
        "off",
        onoff(p.has(GuestPolicy::MIGRATE_MA)),
    );
    if let Some(smt) = policy.smt {
        v.check("snp.policy.smt", onoff(smt), onoff(p.has(GuestPolicy::SMT)));
    }
    let reserved_ok = p.has(GuestPolicy::RESERVED_ONE) && p.0 & GuestPolicy::UNKNOWN == 0;
    v.record(
        "snp.policy.reserved",
        reserved_ok,
        "bit 17 set, bits 26..63 clear",
        format!("policy {:#x}", p.0),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcb_layouts() {
        // Milan: bootloader byte 0, TEE byte 1, SNP byte 6, microcode byte 7.
        let raw = u64::from_le_bytes([3, 0, 0, 0, 0, 0, 8, 115]);
        let t = Tcb::decode(raw, Product::Milan);
        assert_eq!((t.bootloader, t.tee, t.snp, t.microcode), (3, 0, 8, 115));
        let t = Tcb::decode(u64::from_le_bytes([1, 2, 3, 4, 0, 0, 0, 9]), Product::Turin);
        assert_eq!(
            (t.fmc, t.bootloader, t.tee, t.snp, t.microcode),
            (1, 2, 3, 4, 9)
        );
        assert!(!t.at_least(&Tcb {
            snp: 5,
            ..Tcb::default()
        }));
    }
}
