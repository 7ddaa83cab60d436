//! Intel TDX: a quote (version 4 or 5), its DCAP collateral and a pinned release.
//!
//! The signature chain (quote → QE report → PCK certificate → Intel SGX Root CA, and the TCB
//! info and QE identity collateral with their own signatures and CRLs) is verified by the
//! pure-Rust `dcap-qvl` crate with the collateral the caller passes in (JSON, as a PCCS or
//! Intel PCS serves it) and the time the caller passes in (this crate has no clock). The
//! TD report body the signature covers is then compared with the release and the policy:
//!
//! | check | passes when |
//! |---|---|
//! | `tdx.quote` | the bytes are a TDX quote of version 4 or 5 with a TD 1.0/1.5 body |
//! | `tdx.signature` | `dcap-qvl` verified the quote and collateral chains to Intel's root at `now` |
//! | `tdx.tcb_status` | the platform's TCB status is one the policy accepts (default `UpToDate`) |
//! | `tdx.mrtd` | `MRTD` equals the release's |
//! | `tdx.rtmr1` | `RTMR1` equals the release's (kernel, boot events) |
//! | `tdx.rtmr2` | `RTMR2` equals the release's (command line, initrd) |
//! | `tdx.rtmr0` | `RTMR0` equals the declared platform profile's (only if the policy declares one) |
//! | `tdx.rtmr3` | `RTMR3` is zero (nothing extended at run time) |
//! | `tdx.td_attributes.debug` | `TDATTRIBUTES` bit 0 (DEBUG) is clear |
//! | `tdx.td_attributes` | `TDATTRIBUTES` equals the policy's value (only if it declares one) |
//! | `tdx.xfam` | `XFAM` equals the policy's value (only if it declares one) |
//! | `tdx.mrconfigid`, `tdx.mrowner`, `tdx.mrownerconfig` | each equals the policy's value (zero by default) |
//! | `tdx.report_data` | `REPORTDATA` equals the expected binding |
//!
//! RTMR0 (the firmware's configuration and the ACPI tables) depends on the VMM and the VM's
//! shape (memory, vCPUs, devices), not on the image, so it is not in the record: a client
//! that knows its platform declares it ([`TdxPolicy::rtmr0`], e.g. measured once on a trusted
//! host of that provider with that VM shape) and it is then checked; otherwise it is not
//! (docs/threat-model.md).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::snp::reader::Reader;
use crate::snp::Hex;
use crate::Verdict;

/// Byte offset of the TD report body in a version-4 quote (after the 48-byte header).
pub const V4_BODY_OFFSET: usize = 48;
/// Size of a TD 1.0 report body. Changing it breaks the format.
pub const TD10_BODY_LEN: usize = 584;

/// The TD report body fields this verifier judges (Intel TDX DCAP quote format, "TD Quote
/// Body"; offsets relative to the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdBody {
    /// +120 `TDATTRIBUTES`.
    pub td_attributes: [u8; 8],
    /// +128 `XFAM`.
    pub xfam: [u8; 8],
    /// +136 `MRTD`.
    pub mrtd: [u8; 48],
    /// +184 `MRCONFIGID`.
    pub mrconfigid: [u8; 48],
    /// +232 `MROWNER`.
    pub mrowner: [u8; 48],
    /// +280 `MROWNERCONFIG`.
    pub mrownerconfig: [u8; 48],
    /// +328.. `RTMR0`..`RTMR3`.
    pub rtmr: [[u8; 48]; 4],
    /// +520 `REPORTDATA`.
    pub report_data: [u8; 64],
}

/// Why bytes are not a TDX quote this crate can judge.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuoteError {
    /// The quote ends before the field.
    Truncated {
        /// The field that does not fit.
        field: &'static str,
    },
    /// The header's version is not 4 or 5.
    UnknownVersion {
        /// The version found.
        version: u16,
    },
    /// The header's TEE type is not TDX (0x81).
    NotTdx {
        /// The TEE type found.
        tee_type: u32,
    },
    /// A version-5 body type other than TD 1.0 (2) or TD 1.5 (3).
    UnknownBodyType {
        /// The body type found.
        body_type: u16,
    },
}

impl core::fmt::Display for QuoteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated { field } => write!(f, "the quote ends inside {field}"),
            Self::UnknownVersion { version } => {
                write!(f, "quote version {version} is not 4 or 5")
            }
            Self::NotTdx { tee_type } => write!(f, "TEE type {tee_type:#x} is not TDX (0x81)"),
            Self::UnknownBodyType { body_type } => {
                write!(
                    f,
                    "quote body type {body_type} is not TD 1.0 (2) or TD 1.5 (3)"
                )
            }
        }
    }
}

impl core::error::Error for QuoteError {}

impl TdBody {
    /// Parses the header and the TD report body of a quote (no signature check).
    pub fn from_quote(quote: &[u8]) -> Result<Self, QuoteError> {
        let mut r = Reader::new(quote);
        let t = |field| QuoteError::Truncated { field };
        let version = r
            .at(0)
            .array::<2>()
            .map(u16::from_le_bytes)
            .ok_or(t("version"))?;
        let tee_type = r.at(4).u32().ok_or(t("tee_type"))?;
        let body_at = match version {
            4 => V4_BODY_OFFSET,
            5 => {
                let body_type = r
                    .at(48)
                    .array::<2>()
                    .map(u16::from_le_bytes)
                    .ok_or(t("body type"))?;
                if !matches!(body_type, 2 | 3) {
                    return Err(QuoteError::UnknownBodyType { body_type });
                }
                // u16 type, u32 size, then the body.
                54
            }
            version => return Err(QuoteError::UnknownVersion { version }),
        };
        if tee_type != 0x81 {
            return Err(QuoteError::NotTdx { tee_type });
        }
        let field = |off: usize| {
            let mut at = Reader::new(quote);
            at.at(body_at + off);
            at
        };
        Ok(Self {
            td_attributes: field(120).array().ok_or(t("TDATTRIBUTES"))?,
            xfam: field(128).array().ok_or(t("XFAM"))?,
            mrtd: field(136).array().ok_or(t("MRTD"))?,
            mrconfigid: field(184).array().ok_or(t("MRCONFIGID"))?,
            mrowner: field(232).array().ok_or(t("MROWNER"))?,
            mrownerconfig: field(280).array().ok_or(t("MROWNERCONFIG"))?,
            rtmr: [
                field(328).array().ok_or(t("RTMR0"))?,
                field(376).array().ok_or(t("RTMR1"))?,
                field(424).array().ok_or(t("RTMR2"))?,
                field(472).array().ok_or(t("RTMR3"))?,
            ],
            report_data: field(520).array().ok_or(t("REPORTDATA"))?,
        })
    }

    fn from_dcap(r: &dcap_qvl::quote::TDReport10) -> Self {
        Self {
            td_attributes: r.td_attributes,
            xfam: r.xfam,
            mrtd: r.mr_td,
            mrconfigid: r.mr_config_id,
            mrowner: r.mr_owner,
            mrownerconfig: r.mr_owner_config,
            rtmr: [r.rt_mr0, r.rt_mr1, r.rt_mr2, r.rt_mr3],
            report_data: r.report_data,
        }
    }
}

/// What the release pins (the record's TDX profile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxRelease {
    /// The profile's name (for messages).
    pub profile: String,
    /// `MRTD`.
    pub mrtd: [u8; 48],
    /// `RTMR1`.
    pub rtmr1: [u8; 48],
    /// `RTMR2`.
    pub rtmr2: [u8; 48],
}

/// What the client requires beyond the release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxPolicy {
    /// TCB statuses accepted (`UpToDate`, `SWHardeningNeeded`, ...).
    pub accepted_tcb_status: Vec<String>,
    /// The exact `TDATTRIBUTES`, if the client declares it.
    pub td_attributes: Option<[u8; 8]>,
    /// The exact `XFAM`, if the client declares it.
    pub xfam: Option<[u8; 8]>,
    /// `RTMR0` of the platform profile the client declares (VMM, firmware configuration and
    /// VM shape); not checked when `None`.
    pub rtmr0: Option<[u8; 48]>,
    /// `MRCONFIGID` (zero unless declared).
    pub mrconfigid: [u8; 48],
    /// `MROWNER` (zero unless declared).
    pub mrowner: [u8; 48],
    /// `MROWNERCONFIG` (zero unless declared).
    pub mrownerconfig: [u8; 48],
}

impl Default for TdxPolicy {
    fn default() -> Self {
        Self {
            accepted_tcb_status: alloc::vec!["UpToDate".into()],
            td_attributes: None,
            xfam: None,
            rtmr0: None,
            mrconfigid: [0; 48],
            mrowner: [0; 48],
            mrownerconfig: [0; 48],
        }
    }
}

/// Verifies a TDX quote with its collateral (JSON as a PCCS serves it, `QuoteCollateralV3`)
/// at `now` (seconds since the Unix epoch), then checks its body.
pub fn verify(
    quote: &[u8],
    collateral_json: &[u8],
    now: u64,
    release: &TdxRelease,
    policy: &TdxPolicy,
    report_data: &[u8; 64],
) -> Verdict {
    let mut v = Verdict::default();
    let parsed = match TdBody::from_quote(quote) {
        Ok(b) => b,
        Err(e) => {
            v.record("tdx.quote", false, "a TDX quote, version 4 or 5", e);
            return v;
        }
    };
    v.record(
        "tdx.quote",
        true,
        "a TDX quote, version 4 or 5",
        "TDX quote",
    );
    let collateral: Result<dcap_qvl::QuoteCollateralV3, _> =
        serde_json::from_slice(collateral_json);
    let verified = match collateral {
        Err(e) => Err(format!("the collateral is not QuoteCollateralV3 JSON: {e}")),
        Ok(c) => dcap_qvl::verify::verify(quote, &c, now).map_err(|e| format!("{e:#}")),
    };
    let body = match verified {
        Err(e) => {
            v.record("tdx.signature", false, "verified to Intel's root", e);
            // Judge the unsigned body anyway so every difference is named; the verdict
            // already fails.
            parsed
        }
        Ok(report) => {
            let signed = match &report.report {
                dcap_qvl::quote::Report::TD10(r) => Some(TdBody::from_dcap(r)),
                dcap_qvl::quote::Report::TD15(r) => Some(TdBody::from_dcap(&r.base)),
                _ => None,
            };
            match signed {
                Some(b) => {
                    v.record(
                        "tdx.signature",
                        true,
                        "verified to Intel's root",
                        "verified",
                    );
                    let accepted = policy.accepted_tcb_status.contains(&report.status);
                    v.record(
                        "tdx.tcb_status",
                        accepted,
                        policy.accepted_tcb_status.join(" or "),
                        &report.status,
                    );
                    b
                }
                None => {
                    v.record("tdx.signature", false, "a TD report", "another report type");
                    parsed
                }
            }
        }
    };
    check_body(&mut v, &body, release, policy, report_data);
    v
}

/// The body checks alone (no signature): every comparison with the release and the policy.
pub fn check_body(
    v: &mut Verdict,
    body: &TdBody,
    release: &TdxRelease,
    policy: &TdxPolicy,
    report_data: &[u8; 64],
) {
    v.check("tdx.mrtd", Hex(&release.mrtd), Hex(&body.mrtd));
    v.check("tdx.rtmr1", Hex(&release.rtmr1), Hex(&body.rtmr[1]));
    v.check("tdx.rtmr2", Hex(&release.rtmr2), Hex(&body.rtmr[2]));
    if let Some(want) = policy.rtmr0 {
        v.check("tdx.rtmr0", Hex(&want), Hex(&body.rtmr[0]));
    }
    v.check("tdx.rtmr3", Hex(&[0; 48]), Hex(&body.rtmr[3]));
    let debug = body.td_attributes[0] & 1 != 0;
    v.check(
        "tdx.td_attributes.debug",
        "off",
        if debug { "on" } else { "off" },
    );
    if let Some(want) = policy.td_attributes {
        v.check("tdx.td_attributes", Hex(&want), Hex(&body.td_attributes));
    }
    if let Some(want) = policy.xfam {
        v.check("tdx.xfam", Hex(&want), Hex(&body.xfam));
    }
    v.check(
        "tdx.mrconfigid",
        Hex(&policy.mrconfigid),
        Hex(&body.mrconfigid),
    );
    v.check("tdx.mrowner", Hex(&policy.mrowner), Hex(&body.mrowner));
    v.check(
        "tdx.mrownerconfig",
        Hex(&policy.mrownerconfig),
        Hex(&body.mrownerconfig),
    );
    v.check("tdx.report_data", Hex(report_data), Hex(&body.report_data));
}
