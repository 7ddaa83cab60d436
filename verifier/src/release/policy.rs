//! A client's release policy, and the decision: is this release directory what trusted
//! publishers signed, and have enough trusted rebuilders reproduced it?

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde::Serialize;
use serde_json::{Map, Value};

use super::dsse::Envelope;
use super::keys::{Fingerprint, PublicKey};
use super::statement::{
    Sha256, Statement, PROVENANCE_PREDICATE_TYPE, REBUILD_PREDICATE_TYPE, RELEASE_PREDICATE_TYPE,
};
use crate::Verdict;

/// The name of the build record among the release's files.
pub const RECORD_NAME: &str = "record.json";

/// What a client trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Keys whose signature on the release statement is accepted (any one suffices).
    pub publisher_keys: Vec<TrustedKey>,
    /// Keys whose rebuild attestations count.
    pub rebuilder_keys: Vec<TrustedKey>,
    /// How many distinct trusted rebuilders must attest an identical rebuild.
    pub rebuilders_required: usize,
    /// The release statement's predicate type ([`RELEASE_PREDICATE_TYPE`] by default).
    pub predicate_type: String,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            publisher_keys: Vec::new(),
            rebuilder_keys: Vec::new(),
            rebuilders_required: 0,
            predicate_type: RELEASE_PREDICATE_TYPE.into(),
        }
    }
}

/// A trusted key: the key itself, or its fingerprint (then the key must come with the
/// release, as a `.pub` file; a sha256 pin of the key is as strong as the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedKey {
    /// The public key.
    Key(PublicKey),
    /// Its fingerprint.
    Fingerprint(Fingerprint),
}

impl TrustedKey {
    /// The key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        match self {
            TrustedKey::Key(k) => k.fingerprint(),
            TrustedKey::Fingerprint(f) => *f,
        }
    }
}

/// A release as read from its directory (or registry): nothing here is trusted yet.
#[derive(Debug, Clone, Copy)]
pub struct Release<'a> {
    /// Every file of the build output with its sha256 (`record.json` included; envelopes and
    /// keys excluded).
    pub files: &'a [(String, Sha256)],
    /// The bytes of `record.json`.
    pub record: &'a [u8],
    /// Every `*.intoto.json` file: name and bytes.
    pub envelopes: &'a [(String, Vec<u8>)],
    /// Public keys shipped with the release (`*.pub`); used only when the policy pins their
    /// fingerprint.
    pub keys: &'a [PublicKey],
}

/// One platform profile's pinned launch values, from the signed record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PinnedMeasurement {
    /// The profile name.
    pub profile: String,
    /// `snp` or `tdx`.
    pub platform: String,
    /// Every value of the profile (`launch_digest`, `mrtd`, `rtmr1`, `rtmr2`, `vcpus`, ...,
    /// and `firmware_sha256`), in record order.
    pub values: Map<String, Value>,
}

/// The outcome: every check made, and what the client pins when it passed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseVerdict {
    /// Whether the policy holds (every check passed).
    pub passed: bool,
    /// Every check, in order.
    pub verdict: Verdict,
    /// Trusted publisher keys whose signature on the release statement verified.
    pub publishers: Vec<String>,
    /// Trusted rebuilders counted (distinct keys with a valid attestation of these subjects).
    pub rebuilders: Vec<String>,
    /// Trusted rebuilders without a valid attestation.
    pub missing_rebuilders: Vec<String>,
    /// The measurement set to pin, from the signed predicate (empty if it was not read).
    pub measurements: Vec<PinnedMeasurement>,
}

struct Parsed<'a> {
    name: &'a str,
    envelope: Envelope,
    statement: Statement,
}

/// Decides whether `release` satisfies `policy`. Fails closed: any envelope that cannot be
/// read, any file not covered by the signed statement, any subject without its file fails.
pub fn check_release(release: &Release<'_>, policy: &Policy) -> ReleaseVerdict {
    let mut v = Verdict::default();
    let mut out = ReleaseVerdict {
        passed: false,
        verdict: Verdict::default(),
        publishers: Vec::new(),
        rebuilders: Vec::new(),
        missing_rebuilders: Vec::new(),
        measurements: Vec::new(),
    };
    let publishers = resolve(&policy.publisher_keys, release.keys, "publisher", &mut v);
    let rebuilders = resolve(&policy.rebuilder_keys, release.keys, "rebuilder", &mut v);

    let mut statements = Vec::new();
    let mut provenance = Vec::new();
    let mut rebuilds = Vec::new();
    for (name, bytes) in release.envelopes {
        let parsed = Envelope::parse(bytes)
            .map_err(|e| e.to_string())
            .and_then(|env| {
                let payload = env.payload().map_err(|e| e.to_string())?;
                let st = Statement::parse(&payload).map_err(|e| e.to_string())?;
                Ok((env, st))
            });
        let (envelope, statement) = match parsed {
            Ok(p) => p,
            Err(e) => {
                v.record(
                    &format!("envelope {name}"),
                    false,
                    "a DSSE envelope holding an in-toto statement",
                    e,
                );
                continue;
            }
        };
        let p = Parsed {
            name,
            envelope,
            statement,
        };
        let pt = p.statement.predicate_type.as_str();
        if pt == policy.predicate_type {
            statements.push(p);
        } else if pt == PROVENANCE_PREDICATE_TYPE {
            provenance.push(p);
        } else if pt == REBUILD_PREDICATE_TYPE {
            rebuilds.push(p);
        } else {
            v.record(
                &format!("envelope {name}"),
                false,
                format!(
                    "predicateType {}, {PROVENANCE_PREDICATE_TYPE} or {REBUILD_PREDICATE_TYPE}",
                    policy.predicate_type
                ),
                pt,
            );
        }
    }

    let release_st = match statements.as_slice() {
        [one] => {
            v.record("release.statement", true, "", one.name);
            one
        }
        many => {
            let names: Vec<&str> = many.iter().map(|p| p.name).collect();
            v.record(
                "release.statement",
                false,
                format!(
                    "exactly one envelope with predicateType {}",
                    policy.predicate_type
                ),
                format!("{} ({})", many.len(), names.join(", ")),
            );
            out.verdict = v;
            return out;
        }
    };

    let rep = release_st.envelope.verify(&publishers);
    out.publishers = rep.verified.iter().map(|f| f.to_string()).collect();
    v.record(
        "release.signature",
        !rep.verified.is_empty(),
        format!(
            "a valid signature by one of [{}]",
            fingerprints(&policy.publisher_keys)
        ),
        if rep.verified.is_empty() {
            rep.rejected.join("; ")
        } else {
            format!("verified by {}", out.publishers.join(", "))
        },
    );

    let subjects = match release_st.statement.subjects() {
        Ok(s) => s,
        Err(e) => {
            v.record("release.subjects", false, "sha256 subjects", e);
            out.verdict = v;
            return out;
        }
    };
    let files: BTreeMap<&str, Sha256> = release
        .files
        .iter()
        .map(|(n, d)| (n.as_str(), *d))
        .collect();
    let mut names: Vec<&str> = subjects.keys().map(String::as_str).collect();
    names.extend(files.keys().copied().filter(|n| !subjects.contains_key(*n)));
    for name in names {
        let signed = subjects
            .get(name)
            .map_or("(not a signed subject)".into(), |d| d.to_string());
        let found = files
            .get(name)
            .map_or("(missing)".into(), |d| d.to_string());
        v.check(&format!("subject {name}"), signed, found);
    }

    let record_digest = Sha256::of(release.record);
    v.check(
        "record.digest",
        subjects
            .get(RECORD_NAME)
            .map_or("(record.json is not a signed subject)".into(), |d| {
                d.to_string()
            }),
        record_digest,
    );
    let record: Option<Value> = serde_json::from_slice(release.record).ok();
    v.record(
        "record.predicate",
        record.as_ref() == Some(&release_st.statement.predicate),
        "record.json equals the signed predicate",
        if record.as_ref() == Some(&release_st.statement.predicate) {
            "equal"
        } else {
            "record.json differs from the signed predicate"
        },
    );
    let mut outputs = predicate_outputs(&release_st.statement.predicate);
    if let Some(d) = subjects.get(RECORD_NAME) {
        outputs.insert(RECORD_NAME.into(), d.to_string());
    }
    let subject_hex: BTreeMap<String, String> = subjects
        .iter()
        .map(|(n, d)| (n.clone(), d.to_string()))
        .collect();
    v.record(
        "record.outputs",
        outputs == subject_hex,
        "the signed record's outputs (and record.json) are exactly the subjects",
        if outputs == subject_hex {
            "equal"
        } else {
            "they differ"
        },
    );

    if provenance.is_empty() {
        v.record("provenance", true, "optional", "absent");
    }
    for p in &provenance {
        let rep = p.envelope.verify(&publishers);
        let same = p.statement.subjects().ok().as_ref() == Some(&subjects);
        v.record(
            &format!("provenance {}", p.name),
            !rep.verified.is_empty() && same,
            "signed by a trusted publisher, over the release's subjects",
            match (rep.verified.is_empty(), same) {
                (false, true) => format!("verified by {}", join(&rep.verified)),
                (true, _) => rep.rejected.join("; "),
                (false, false) => "covers other subjects than the release".into(),
            },
        );
    }

    let mut counted: Vec<Fingerprint> = Vec::new();
    for p in &rebuilds {
        let mut rep = p.envelope.verify(&rebuilders);
        let mut problems: Vec<String> = Vec::new();
        if rep.verified.is_empty() {
            problems.push(format!(
                "no trusted signature ({})",
                rep.rejected.join("; ")
            ));
        }
        // A publisher cannot vouch for its own release as an independent rebuilder.
        let before = rep.verified.len();
        rep.verified
            .retain(|f| !policy.publisher_keys.iter().any(|k| k.fingerprint() == *f));
        if before > 0 && rep.verified.is_empty() {
            problems.push("signed by a publisher key, which cannot count as a rebuilder".into());
        }
        if p.statement.subjects().ok().as_ref() != Some(&subjects) {
            problems.push("covers other subjects than the release".into());
        }
        let pred = &p.statement.predicate;
        if pred.get("result").and_then(Value::as_str) != Some("identical") {
            problems.push("result is not \"identical\"".into());
        }
        let attested = pred.get("published_record_sha256").and_then(Value::as_str);
        if attested != Some(record_digest.to_string().as_str()) {
            problems.push("attests another record.json".into());
        }
        let actual = if problems.is_empty() {
            for f in &rep.verified {
                if !counted.contains(f) {
                    counted.push(*f);
                }
            }
            format!("counted: {}", join(&rep.verified))
        } else {
            format!("not counted: {}", problems.join("; "))
        };
        // Not a failure by itself: the `rebuilders` count below decides.
        v.record(&format!("rebuild {}", p.name), true, "", actual);
    }
    out.rebuilders = counted.iter().map(|f| f.to_string()).collect();
    out.missing_rebuilders = policy
        .rebuilder_keys
        .iter()
        .map(TrustedKey::fingerprint)
        .filter(|f| !counted.contains(f))
        .map(|f| f.to_string())
        .collect();
    v.record(
        "rebuilders",
        counted.len() >= policy.rebuilders_required,
        format!(
            "at least {} distinct trusted rebuilder(s)",
            policy.rebuilders_required
        ),
        format!(
            "{} of {} required; missing: {}",
            counted.len(),
            policy.rebuilders_required,
            if out.missing_rebuilders.is_empty() {
                "none".into()
            } else {
                out.missing_rebuilders.join(", ")
            }
        ),
    );

    out.measurements = pinned(&release_st.statement.predicate);
    v.record(
        "measurements",
        !out.measurements.is_empty(),
        "at least one platform profile in the signed record",
        format!("{} profile(s)", out.measurements.len()),
    );
    out.passed = v.passed();
    out.verdict = v;
    out
}

/// The policy's keys that can verify: keys given, and fingerprints matched by a shipped key.
fn resolve(
    trusted: &[TrustedKey],
    shipped: &[PublicKey],
    role: &str,
    v: &mut Verdict,
) -> Vec<PublicKey> {
    let mut keys = Vec::new();
    for t in trusted {
        match t {
            TrustedKey::Key(k) => keys.push(k.clone()),
            TrustedKey::Fingerprint(f) => match shipped.iter().find(|k| k.fingerprint() == *f) {
                Some(k) => keys.push(k.clone()),
                None => v.record(
                    &format!("key {role} {f}"),
                    true,
                    "",
                    "pinned by fingerprint; no matching .pub file in the release",
                ),
            },
        }
    }
    keys
}

fn fingerprints(keys: &[TrustedKey]) -> String {
    let f: Vec<String> = keys.iter().map(|k| k.fingerprint().to_string()).collect();
    f.join(", ")
}

fn join(fps: &[Fingerprint]) -> String {
    let f: Vec<String> = fps.iter().map(|k| k.to_string()).collect();
    f.join(", ")
}

/// The record's `outputs` as name -> sha256 hex (entries without both are skipped, and then
/// differ from the subjects).
fn predicate_outputs(predicate: &Value) -> BTreeMap<String, String> {
    predicate
        .get("outputs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|o| {
            Some((
                o.get("name")?.as_str()?.to_string(),
                o.get("sha256")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

/// Each profile's values from the record's `measurements`.
fn pinned(predicate: &Value) -> Vec<PinnedMeasurement> {
    let Some(list) = predicate.get("measurements").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|m| {
            let profile = m.get("profile")?.as_str()?.to_string();
            let platform = m.get("platform")?.as_object()?;
            let kind = platform.get("kind")?.as_str()?.to_string();
            let mut values: Map<String, Value> = platform
                .iter()
                .filter(|(k, _)| k.as_str() != "kind")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if let Some(fw) = m.get("firmware_sha256") {
                values.insert("firmware_sha256".into(), fw.clone());
            }
            Some(PinnedMeasurement {
                profile,
                platform: kind,
                values,
            })
        })
        .collect()
}
