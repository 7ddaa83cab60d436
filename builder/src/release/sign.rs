//! `sign`: the publisher's release statement and SLSA provenance over a build output.

use std::path::{Path, PathBuf};

use measurements::record::{Input, Record};
use serde_json::{json, Value};
use verifier::release::{
    Envelope, Sha256, Statement, PAYLOAD_TYPE, PROVENANCE_PREDICATE_TYPE, RECORD_NAME,
    RELEASE_PREDICATE_TYPE,
};

use super::keys::{public_pem, SigningKey};
use super::{io, subject_files, write_atomic, ReleaseError, PROVENANCE_FILE, RELEASE_FILE};

/// The SLSA `buildType` of an enclave-builder build (versioned with the record schema).
pub const BUILD_TYPE: &str = "urn:enclave-builder:build:v1";

/// What `sign` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Signed {
    /// `DIR/release.intoto.json`.
    pub release: PathBuf,
    /// `DIR/provenance.intoto.json`.
    pub provenance: PathBuf,
    /// `DIR/publisher-<fp16>.pub`, the public key (clients may pin its fingerprint).
    pub public_key: PathBuf,
    /// The signing key's fingerprint.
    pub fingerprint: String,
    /// Every subject, name and sha256.
    pub subjects: Vec<(String, String)>,
}

/// Checks that `dir` is exactly the build output its `record.json` lists, then writes the
/// signed release statement and provenance (each to a temporary file, then renamed). No
/// artifact is modified.
pub fn sign(dir: &Path, key: &SigningKey) -> Result<Signed, ReleaseError> {
    let record_path = dir.join(RECORD_NAME);
    let record_bytes = fs_err::read(&record_path).map_err(io(&record_path))?;
    let record: Record =
        serde_json::from_slice(&record_bytes).map_err(|e| ReleaseError::Parse {
            path: record_path.clone(),
            message: e.to_string(),
        })?;
    let predicate: Value =
        serde_json::from_slice(&record_bytes).map_err(|e| ReleaseError::Parse {
            path: record_path.clone(),
            message: e.to_string(),
        })?;
    let files = subject_files(dir)?;
    check_outputs(dir, &record, &files)?;
    let subjects: Vec<(String, Sha256)> = files.iter().map(|(n, d, _)| (n.clone(), *d)).collect();

    let public = key.public();
    let fp = public.fingerprint();
    let release = Statement::new(&subjects, RELEASE_PREDICATE_TYPE, predicate);
    let provenance = Statement::new(
        &subjects,
        PROVENANCE_PREDICATE_TYPE,
        provenance_predicate(&record, Sha256::of(&record_bytes)),
    );
    let out = Signed {
        release: dir.join(RELEASE_FILE),
        provenance: dir.join(PROVENANCE_FILE),
        public_key: dir.join(format!("publisher-{}.pub", fp.short())),
        fingerprint: fp.to_string(),
        subjects: subjects
            .iter()
            .map(|(n, d)| (n.clone(), d.to_string()))
            .collect(),
    };
    write_atomic(&out.public_key, public_pem(&public).as_bytes())?;
    write_atomic(&out.provenance, &envelope_json(&provenance, key))?;
    write_atomic(&out.release, &envelope_json(&release, key))?;
    Ok(out)
}

/// A signed envelope of `statement`, as pretty JSON with a final newline.
pub fn envelope_json(statement: &Statement, key: &SigningKey) -> Vec<u8> {
    // Serialising a Statement (strings and a JSON value) cannot fail.
    let payload = serde_json::to_vec(statement).unwrap_or_default();
    let sign = |m: &[u8]| key.sign(m);
    let env = Envelope::sign(
        PAYLOAD_TYPE,
        &payload,
        &[(key.public().fingerprint(), &sign)],
    );
    let mut bytes = serde_json::to_vec_pretty(&env).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The directory's files (except record.json) must be exactly the record's outputs.
fn check_outputs(
    dir: &Path,
    record: &Record,
    files: &[(String, Sha256, u64)],
) -> Result<(), ReleaseError> {
    let refuse = |name: &str, problem: String| ReleaseError::NotTheRecordedOutput {
        path: dir.join(name),
        problem,
    };
    for (name, digest, size) in files {
        if name == RECORD_NAME {
            continue;
        }
        let Some(o) = record.outputs.iter().find(|o| o.name == *name) else {
            return Err(refuse(name, "not listed in record.json's outputs".into()));
        };
        if o.size != *size {
            return Err(refuse(
                name,
                format!("size {size}, but record.json says {}", o.size),
            ));
        }
        if o.sha256.as_bytes() != &digest.0 {
            return Err(refuse(
                name,
                format!("sha256 {digest}, but record.json says {}", o.sha256),
            ));
        }
    }
    for o in &record.outputs {
        if !files.iter().any(|(n, _, _)| *n == o.name) {
            return Err(refuse(
                &o.name,
                "listed in record.json's outputs but missing".into(),
            ));
        }
    }
    Ok(())
}

/// The SLSA provenance v1 predicate: the manifest as the external parameter, every input as
/// a resolved dependency, this builder as the builder.
pub fn provenance_predicate(record: &Record, record_sha256: Sha256) -> Value {
    let mut deps: Vec<Value> = record.inputs.iter().map(dependency).collect();
    deps.extend(record.measurements.iter().map(|m| {
        json!({
            "name": format!("profile-firmware:{}", m.profile),
            "digest": { "sha256": m.firmware_sha256.to_hex() },
        })
    }));
    json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "manifest": { "digest": { "sha256": record.manifest_sha256.to_hex() } },
                "image": { "name": record.image.name, "version": record.image.version },
            },
            "internalParameters": { "source_date_epoch": record.source_date_epoch },
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {
                "id": format!("urn:enclave-builder:builder:{}", record.builder.version),
                "version": { record.builder.name.clone(): record.builder.version },
            },
            "metadata": {
                "invocationId": format!("urn:enclave-builder:record:sha256:{record_sha256}"),
            },
        },
    })
}

/// One input as an in-toto ResourceDescriptor (name and sha256 digest).
fn dependency(input: &Input) -> Value {
    let (name, digest) = match input {
        Input::OciImage {
            source, manifest, ..
        } => (format!("oci-image:{source}"), manifest),
        Input::Layer { source, sha256, .. } => (format!("layer:{source}"), sha256),
        Input::File {
            disk, path, sha256, ..
        } => (
            format!("file:{}:{path}", disk.as_deref().unwrap_or("rootfs")),
            sha256,
        ),
        Input::RustComponent {
            package,
            bin,
            sha256,
            ..
        } => (format!("rust-component:{package}/{bin}"), sha256),
        Input::Wheel { source, sha256, .. } => (format!("wheel:{source}"), sha256),
        Input::Kernel { source, sha256, .. } => (format!("kernel:{source}"), sha256),
        Input::KernelConfig { source, sha256, .. } => (format!("kernel-config:{source}"), sha256),
        Input::Firmware { source, sha256, .. } => (format!("firmware:{source}"), sha256),
        Input::UkiStub { source, sha256, .. } => (format!("uki-stub:{source}"), sha256),
    };
    json!({ "name": name, "digest": { "sha256": digest.to_hex() } })
}
