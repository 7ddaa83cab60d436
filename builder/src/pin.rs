//! Pinned local files: hash what is on disk and compare with the manifest's pin.
//!
//! A missing pin and a wrong pin are both refused; the message gives the digest actually
//! found so the user can pin it on purpose.

use std::io::Read;
use std::path::{Path, PathBuf};

use measurements::Sha256Digest;
use sha2::{Digest, Sha256};

/// A local file whose bytes matched its pin when it was checked ([`check`]), or will be
/// checked as the stage that reads it whole does so ([`check_deferred`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedFile {
    /// The path as the manifest wrote it (relative to the manifest).
    pub source: String,
    /// The resolved path on this machine (never written into an artifact).
    pub path: PathBuf,
    /// Its sha256: the pin.
    pub sha256: Sha256Digest,
    /// Its size.
    pub size: u64,
    /// The manifest field that pins it (`disks[0].files[1]`), for the deferred check's error.
    pub field: String,
}

/// A pin problem with one input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// The manifest gives no digest for the input.
    #[error(
        "{field} ({source_path}) has no sha256 pin; its content has sha256 {found}. \
         If that is the file you mean, add `sha256 = \"{found}\"` to {field}"
    )]
    Missing {
        /// The manifest field, e.g. `boot.kernel`.
        field: String,
        /// The path as written in the manifest.
        source_path: String,
        /// The digest of the file as found.
        found: Sha256Digest,
    },
    /// An OCI layer source names no image manifest digest.
    #[error(
        "{field} (OCI layout {source_path}) has no `manifest` pin; pin the image you mean, e.g. \
         `manifest = \"sha256:...\"`. The layout's index.json lists: {}",
        if available.is_empty() { "nothing readable".to_owned() } else { available.join(", ") }
    )]
    MissingImage {
        /// The manifest field.
        field: String,
        /// The layout directory as written in the manifest.
        source_path: String,
        /// `sha256:... (tag)` of each manifest the layout's index lists.
        available: Vec<String>,
    },
    /// The file's bytes do not match the pin.
    #[error(
        "{field} ({source_path}): sha256 mismatch: the manifest pins {expected} but the file has \
         {found}. Restore the pinned file, or pin the new one on purpose with `sha256 = \"{found}\"`"
    )]
    Mismatch {
        /// The manifest field.
        field: String,
        /// The path as written in the manifest.
        source_path: String,
        /// The pinned digest.
        expected: Sha256Digest,
        /// The digest of the file as found.
        found: Sha256Digest,
    },
    /// The file cannot be read.
    #[error("{field} ({source_path}): cannot read the file; check the path (it is relative to the manifest)")]
    Io {
        /// The manifest field.
        field: String,
        /// The path as written in the manifest.
        source_path: String,
        /// The I/O error (names the resolved path).
        #[source]
        source: std::io::Error,
    },
}

/// Several pin problems, reported together so the user can fix them in one go.
#[derive(Debug, thiserror::Error)]
#[error("{} input(s) failed their pin check:\n  - {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n  - "))]
pub struct PinErrors(pub Vec<PinError>);

/// sha256 and size of a file, streamed.
pub fn hash_file(path: &Path) -> std::io::Result<(Sha256Digest, u64)> {
    let mut file = fs_err::File::open(path)?;
    let mut hasher = Sha256::new();
    let size = hash_rest(&mut file, &mut hasher)?;
    Ok((Sha256Digest(hasher.finalize().into()), size))
}

/// Hashes what is left of `reader`, to its end, into `hasher`; returns how many bytes that was.
pub fn hash_rest(reader: &mut dyn Read, hasher: &mut Sha256) -> std::io::Result<u64> {
    // Small reads stay in cache ([`crate::verity::PIECE_BYTES`] says why this size).
    let mut buf = vec![0u8; crate::verity::PIECE_BYTES];
    let mut size = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(size),
            Ok(n) => {
                hasher.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Checks one file against its pin.
pub fn check(
    base: &Path,
    source: &str,
    pin: Option<&Sha256Digest>,
    field: &str,
) -> Result<PinnedFile, PinError> {
    let path = base.join(source);
    let (found, size) = hash_file(&path).map_err(|e| PinError::Io {
        field: field.to_owned(),
        source_path: source.to_owned(),
        source: e,
    })?;
    match pin {
        None => Err(PinError::Missing {
            field: field.to_owned(),
            source_path: source.to_owned(),
            found,
        }),
        Some(expected) if *expected != found => Err(PinError::Mismatch {
            field: field.to_owned(),
            source_path: source.to_owned(),
            expected: *expected,
            found,
        }),
        Some(_) => Ok(PinnedFile {
            source: source.to_owned(),
            path,
            sha256: found,
            size,
            field: field.to_owned(),
        }),
    }
}

/// Checks a file that a later stage reads whole anyway (a plain tar layer, a data-disk file),
/// so that it is read once. With a pin, only its size is taken here (and it is opened, so an
/// unreadable file is refused now, with every other pin problem); the stage that reads it
/// compares its bytes with the pin when it has read them all, before anything built from them
/// is committed ([`crate::inputs::layer::apply_checked`], [`crate::content::ContentStore::adopt`]).
/// Without a pin it is hashed now, so the refusal can print the digest to pin.
pub fn check_deferred(
    base: &Path,
    source: &str,
    pin: Option<&Sha256Digest>,
    field: &str,
) -> Result<PinnedFile, PinError> {
    let Some(pin) = pin else {
        return check(base, source, None, field);
    };
    let path = base.join(source);
    let io = |e| PinError::Io {
        field: field.to_owned(),
        source_path: source.to_owned(),
        source: e,
    };
    let file = fs_err::File::open(&path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        ))));
    }
    Ok(PinnedFile {
        source: source.to_owned(),
        path,
        sha256: *pin,
        size: meta.len(),
        field: field.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sha256("hello"), by coreutils' sha256sum.
    const HELLO: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn a_deferred_check_sizes_a_pinned_file_and_hashes_an_unpinned_one() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("w"), b"hello").unwrap();
        let pin: Sha256Digest = HELLO.parse().unwrap();
        // Pinned: sized and opened, not hashed (any pin is taken as given until read).
        let other: Sha256Digest = "00".repeat(32).parse().unwrap();
        let p = check_deferred(dir.path(), "w", Some(&other), "disks[0].files[0]").unwrap();
        assert_eq!((p.size, p.sha256), (5, other));
        assert_eq!(p.field, "disks[0].files[0]");
        // Unpinned: hashed now, so the refusal prints the digest to pin.
        match check_deferred(dir.path(), "w", None, "f") {
            Err(PinError::Missing { found, .. }) => assert_eq!(found, pin),
            other => panic!("{other:?}"),
        }
        // Not a readable regular file: refused now, naming the field.
        for source in ["missing", "."] {
            match check_deferred(dir.path(), source, Some(&pin), "f") {
                Err(e @ PinError::Io { .. }) => assert!(e.to_string().starts_with("f ("), "{e}"),
                other => panic!("{source}: {other:?}"),
            }
        }
        // The immediate check still hashes: the same wrong pin is refused now.
        match check(dir.path(), "w", Some(&other), "f") {
            Err(PinError::Mismatch { found, .. }) => assert_eq!(found, pin),
            other => panic!("{other:?}"),
        }
    }
}
