//! Identifiers derived from content: the file-system UUID, the verity salt and UUID.
//!
//! They are functions of the root file system's pinned inputs (layer digests, extra files,
//! `source_date_epoch`), so the same inputs give the same identifiers on every machine, and a
//! change elsewhere in the manifest (the kernel, the command line, a data disk) leaves the
//! root image's bytes alone. Changing the domain strings below changes every image.

use measurements::Sha256Digest;
use sha2::{Digest, Sha256};

/// The rootfs identity seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seed([u8; 32]);

/// One part of the rootfs identity, fed to [`Seed::new`] in order.
#[derive(Debug, Clone, Copy)]
pub enum Part<'a> {
    /// A layer blob digest.
    Layer(&'a Sha256Digest),
    /// An extra file: path inside the image, mode, uid, gid, content digest.
    File(&'a str, u32, u32, u32, &'a Sha256Digest),
    /// A directory the builder makes (a data disk's mount point).
    Dir(&'a str),
    /// The name of a data disk (the first part of a disk's seed).
    Disk(&'a str),
}

impl Seed {
    /// Hashes the parts, each length-prefixed so no two sequences collide.
    pub fn new(epoch: u64, parts: &[Part<'_>]) -> Seed {
        let mut h = Sha256::new();
        h.update(b"enclave-builder/rootfs-seed/v1\0");
        h.update(epoch.to_le_bytes());
        for part in parts {
            match part {
                Part::Layer(d) => {
                    h.update([1u8]);
                    h.update(d.0);
                }
                Part::File(path, mode, uid, gid, d) => {
                    h.update([2u8]);
                    h.update((path.len() as u64).to_le_bytes());
                    h.update(path.as_bytes());
                    h.update(mode.to_le_bytes());
                    h.update(uid.to_le_bytes());
                    h.update(gid.to_le_bytes());
                    h.update(d.0);
                }
                Part::Dir(path) => {
                    h.update([3u8]);
                    h.update((path.len() as u64).to_le_bytes());
                    h.update(path.as_bytes());
                }
                Part::Disk(name) => {
                    h.update([4u8]);
                    h.update((name.len() as u64).to_le_bytes());
                    h.update(name.as_bytes());
                }
            }
        }
        Seed(h.finalize().into())
    }

    fn derive(&self, what: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"enclave-builder/derive/v1\0");
        h.update(what.as_bytes());
        h.update([0u8]);
        h.update(self.0);
        h.finalize().into()
    }

    /// A 32-byte dm-verity salt.
    pub fn verity_salt(&self) -> Vec<u8> {
        self.derive("verity-salt").to_vec()
    }

    /// An RFC 9562 version-8 UUID for `what` (`erofs` or `verity`).
    pub fn uuid(&self, what: &str) -> [u8; 16] {
        let d = self.derive(what);
        let mut u = [0u8; 16];
        u.copy_from_slice(&d[..16]);
        u[6] = (u[6] & 0x0f) | 0x80; // version 8 (custom)
        u[8] = (u[8] & 0x3f) | 0x80; // RFC variant
        u
    }
}

/// Formats a UUID as `8-4-4-4-12` lowercase hex.
pub fn uuid_string(u: &[u8; 16]) -> String {
    let h = hex::encode(u);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_version_and_variant() {
        let s = Seed::new(0, &[]);
        let u = uuid_string(&s.uuid("erofs"));
        // RFC 9562: the version nibble starts the third group, the variant the fourth.
        assert_eq!(&u[14..15], "8", "{u}");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
        assert_ne!(s.uuid("erofs"), s.uuid("verity"));
    }

    #[test]
    fn seed_depends_on_every_part() {
        let d = Sha256Digest::of(b"x");
        let a = Seed::new(1, &[Part::Layer(&d)]);
        assert_ne!(a, Seed::new(2, &[Part::Layer(&d)]));
        assert_ne!(a, Seed::new(1, &[Part::File("/x", 0o644, 0, 0, &d)]));
        assert_ne!(
            Seed::new(1, &[Part::File("/x", 0o644, 0, 0, &d)]),
            Seed::new(1, &[Part::File("/x", 0o600, 0, 0, &d)])
        );
    }
}
