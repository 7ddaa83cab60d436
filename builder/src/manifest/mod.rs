//! The image manifest: what to build, every external input pinned by digest.
//!
//! [`parse`] turns TOML text into a [`Manifest`]; the serde types in [`schema`] are the format,
//! documented field by field in the README. Paths in a manifest are relative to the manifest
//! file; [`crate::plan`] resolves them.

mod schema;

pub use schema::{
    Boot, Disk, FileEntry, Image, InputFile, LayerSource, Manifest, PageAddOrder, Profile, Rootfs,
    RustEntry, SnpProfile, TdxProfile, VmmType, WheelEntry, SCHEMA_VERSION,
};

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The TOML is malformed or does not match the schema (unknown field, wrong type...).
    #[error("{origin}: {source}")]
    Toml {
        /// The manifest's name, for the message.
        origin: String,
        /// What toml/serde said, with line and column.
        #[source]
        source: toml::de::Error,
    },
    /// The manifest declares a schema this builder does not know.
    #[error(
        "{origin}: schema = {found} is not supported; this builder reads schema = {SCHEMA_VERSION}"
    )]
    Schema {
        /// The manifest's name.
        origin: String,
        /// The schema it declares.
        found: u32,
    },
    /// A field's value is out of range.
    #[error("{origin}: {field}: {problem}")]
    Field {
        /// The manifest's name.
        origin: String,
        /// Which field, as a TOML path.
        field: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

/// Parses manifest text. `origin` names it in messages (usually its path).
pub fn parse(text: &str, origin: &str) -> Result<Manifest, Error> {
    let manifest: Manifest = toml::from_str(text).map_err(|source| Error::Toml {
        origin: origin.to_owned(),
        source,
    })?;
    if manifest.schema != SCHEMA_VERSION {
        return Err(Error::Schema {
            origin: origin.to_owned(),
            found: manifest.schema,
        });
    }
    let field = |field: String, problem: String| Error::Field {
        origin: origin.to_owned(),
        field,
        problem,
    };
    check_files(&manifest.rootfs.files, "rootfs.files", &field)?;
    check_wheels(&manifest.rootfs.wheels, "rootfs.wheels", &field)?;
    let mut disk_names = std::collections::BTreeSet::new();
    for (i, d) in manifest.disks.iter().enumerate() {
        let ok_name = !d.name.is_empty()
            && d.name.len() <= 32
            && d.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && d.name != "root";
        if !ok_name {
            return Err(field(
                format!("disks[{i}].name"),
                format!(
                    "{:?}: use 1-32 lowercase letters, digits or `-` (not \"root\"), e.g. \"model\"",
                    d.name
                ),
            ));
        }
        if !disk_names.insert(&d.name) {
            return Err(field(
                format!("disks[{i}].name"),
                format!(
                    "{:?} is used by an earlier disk; names must be unique",
                    d.name
                ),
            ));
        }
        if !is_image_path(&d.mount) || d.mount == "/" {
            return Err(field(
                format!("disks[{i}].mount"),
                format!(
                    "{:?} must be an absolute directory other than / without `..`, e.g. \"/models\"",
                    d.mount
                ),
            ));
        }
        let normal = |p: &str| format!("{}/", p.trim_end_matches('/'));
        if let Some((j, other)) = manifest.disks[..i].iter().enumerate().find(|(_, o)| {
            normal(&d.mount).starts_with(&normal(&o.mount))
                || normal(&o.mount).starts_with(&normal(&d.mount))
        }) {
            return Err(field(
                format!("disks[{i}].mount"),
                format!(
                    "{:?} overlaps disks[{j}].mount {:?}; mount points must not contain each other (the inner one would not exist on the read-only outer disk)",
                    d.mount, other.mount
                ),
            ));
        }
        check_files(&d.files, &format!("disks[{i}].files"), &field)?;
        check_wheels(&d.wheels, &format!("disks[{i}].wheels"), &field)?;
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, p) in manifest.profiles.iter().enumerate() {
        if !names.insert(p.name()) {
            return Err(Error::Field {
                origin: origin.to_owned(),
                field: format!("profiles[{i}].name"),
                problem: format!(
                    "{:?} is used by an earlier profile; names must be unique",
                    p.name()
                ),
            });
        }
        if let Profile::Snp(s) = p {
            if let Some(t) = &s.vcpu_type {
                if t.parse::<measurements::snp::VcpuType>().is_err() {
                    return Err(Error::Field {
                        origin: origin.to_owned(),
                        field: format!("profiles[{i}].vcpu_type"),
                        problem: format!("{t:?} is not a known vCPU model; use one of EPYC, EPYC-Rome, EPYC-Milan, EPYC-Genoa, EPYC-Turin"),
                    });
                }
            }
            if (s.vmm == VmmType::Qemu) != s.vcpu_type.is_some() {
                return Err(Error::Field {
                    origin: origin.to_owned(),
                    field: format!("profiles[{i}].vcpu_type"),
                    problem: "give vcpu_type for vmm = \"qemu\" (QEMU puts the model's signature in the VMSA), and only then".to_owned(),
                });
            }
        }
    }
    Ok(manifest)
}

/// An absolute path inside the image with no `..` component (`\0` and `,` are refused too:
/// they cannot travel on the kernel command line or in a file name).
fn is_image_path(p: &str) -> bool {
    p.starts_with('/') && !p.split('/').any(|c| c == "..") && !p.contains(['\0', ',', ' ', '"'])
}

fn check_files(
    files: &[FileEntry],
    at: &str,
    field: &dyn Fn(String, String) -> Error,
) -> Result<(), Error> {
    for (i, file) in files.iter().enumerate() {
        if file.mode > 0o7777 {
            return Err(field(
                format!("{at}[{i}].mode"),
                format!(
                    "{:#o} has bits beyond 0o7777; give permission bits only, e.g. 0o644",
                    file.mode
                ),
            ));
        }
        if !file.path.starts_with('/') || file.path.split('/').any(|c| c == "..") {
            return Err(field(
                format!("{at}[{i}].path"),
                format!(
                    "{:?} must be an absolute path inside the image without `..`, e.g. \"/etc/motd\"",
                    file.path
                ),
            ));
        }
    }
    Ok(())
}

fn check_wheels(
    wheels: &[WheelEntry],
    at: &str,
    field: &dyn Fn(String, String) -> Error,
) -> Result<(), Error> {
    for (i, w) in wheels.iter().enumerate() {
        if !is_image_path(&w.into) {
            return Err(field(
                format!("{at}[{i}].into"),
                format!(
                    "{:?} must be an absolute directory without `..`, e.g. \"/\"",
                    w.into
                ),
            ));
        }
        if let Some(t) = &w.take {
            if t.is_empty() || t.starts_with('/') || t.split('/').any(|c| c == ".." || c == ".") {
                return Err(field(
                    format!("{at}[{i}].take"),
                    format!(
                        "{t:?} must be a relative directory inside the wheel, e.g. \"pkg/model\""
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
