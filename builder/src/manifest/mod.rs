//! The image manifest: what to build, every external input pinned by digest.
//!
//! [`parse`] turns TOML text into a [`Manifest`]; the serde types in [`schema`] are the format,
//! documented field by field in the README. Paths in a manifest are relative to the manifest
//! file; [`crate::plan`] resolves them.

mod schema;
mod types;

pub use schema::{
    Boot, Disk, FileEntry, Image, InputFile, LayerSource, Manifest, PageAddOrder, Profile, Rootfs,
    RustEntry, SnpProfile, TdxProfile, VmmType, VtpmProfile, WheelEntry, SCHEMA_VERSION,
};
pub use types::{Epoch, ImagePath, Mode, VcpuCounts, NAME_MAX};

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The TOML is malformed or does not match the schema (unknown field, wrong type...).
    #[error("{origin}: {}{error}", field.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
    Toml {
        /// The manifest's name, for the message.
        origin: String,
        /// The field the error is in, as a TOML path (`rootfs.files[0].mode`), when known.
        field: Option<String>,
        /// What toml/serde said, with line and column (shown in this error's message, so not
        /// chained as its source: the message would say it twice).
        error: Box<toml::de::Error>,
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
    let manifest: Manifest = toml::from_str(text).map_err(|error| Error::Toml {
        origin: origin.to_owned(),
        field: error.span().and_then(|s| field_at(text, s.start)),
        error: Box::new(error),
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
        // An image path by type; here only what the command line and the root add.
        if d.mount.contains(CMDLINE_UNSAFE) || d.mount.as_str() == "/" {
            return Err(field(
                format!("disks[{i}].mount"),
                format!(
                    "{:?} must be a directory other than / without `,`, spaces or `\"` (it goes on the kernel command line), e.g. \"/models\"",
                    d.mount.as_str()
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
        if let Profile::Vtpm(v) = p {
            let ok = !v.name.is_empty()
                && v.name.len() <= 64
                && v.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !ok {
                return Err(Error::Field {
                    origin: origin.to_owned(),
                    field: format!("profiles[{i}].name"),
                    problem: format!(
                        "{:?} names the output file uki-NAME.efi: use 1 to 64 of a-z, 0-9, '-' and '_'",
                        v.name
                    ),
                });
            }
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

/// The TOML path of the key on the line holding byte `at` (`rootfs.files[0].mode`): the last
/// table header above it, numbered among its `[[array]]` siblings, then the key. `None` when
/// the line holds no `key =`.
fn field_at(text: &str, at: usize) -> Option<String> {
    let before = text.get(..at)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(line_start..)?.lines().next()?;
    let key = line.split_once('=')?.0.trim();
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let mut table = String::new();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    // Each array's current entry, indexed (`disks` → `disks[1]`), for the tables under it.
    let mut current: std::collections::BTreeMap<String, String> = Default::default();
    let indexed = |name: &str, current: &std::collections::BTreeMap<String, String>| match name
        .rsplit_once('.')
    {
        Some((parent, last)) => match current.get(parent) {
            Some(p) => format!("{p}.{last}"),
            None => name.to_owned(),
        },
        None => name.to_owned(),
    };
    for l in text.get(..line_start)?.lines().map(str::trim) {
        if let Some(name) = l.strip_prefix("[[").and_then(|l| l.split_once("]]")) {
            let name = name.0.trim().to_owned();
            // A new `[[disks]]` entry restarts the numbering of its `[[disks.files]]`.
            counts.retain(|k, _| !k.starts_with(&format!("{name}.")));
            let n = counts.entry(name.clone()).or_insert(0);
            table = format!("{}[{n}]", indexed(&name, &current));
            *n += 1;
            current.insert(name, table.clone());
        } else if let Some(name) = l.strip_prefix('[').and_then(|l| l.split_once(']')) {
            table = indexed(name.0.trim(), &current);
        }
    }
    Some(if table.is_empty() {
        key.to_owned()
    } else {
        format!("{table}.{key}")
    })
}

/// Characters a mount point cannot have: it travels on the kernel command line
/// (`enclave.mount=DEV,MOUNT,...`), where `,` separates fields and a space or `"` ends it.
const CMDLINE_UNSAFE: [char; 3] = [',', ' ', '"'];

fn check_wheels(
    wheels: &[WheelEntry],
    at: &str,
    field: &dyn Fn(String, String) -> Error,
) -> Result<(), Error> {
    for (i, w) in wheels.iter().enumerate() {
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
