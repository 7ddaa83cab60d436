//! Test support: deterministic tar layers and OCI image layouts, for the demo manifest and the
//! suite. Everything written here is a pure function of the calls made (fixed mtimes, fixed
//! compression settings), so the demo manifest can pin the digests.
//!
//! The tar writer sets header fields directly so tests can also produce hostile layers
//! (`..` paths, links through symlinks) that well-behaved tar libraries refuse to write.

use std::path::Path;

use anyhow::Context as _;
use fs_err as fs;
use measurements::Sha256Digest;
use serde_json::json;

pub mod demo;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip (flate2, default level, no name or mtime in the gzip header).
    Gzip,
    /// zstd level 3.
    Zstd,
}

impl Compression {
    /// The OCI layer media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// Compresses `tar`.
    pub fn compress(self, tar: &[u8]) -> anyhow::Result<Vec<u8>> {
        use std::io::Write as _;
        Ok(match self {
            Compression::None => tar.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::GzBuilder::new()
                    .mtime(0)
                    .write(Vec::new(), flate2::Compression::default());
                e.write_all(tar)?;
                e.finish()?
            }
            Compression::Zstd => zstd::stream::encode_all(tar, 3)?,
        })
    }
}

/// The type of a tar entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Hard link.
    Hardlink,
    /// Character device.
    Char,
    /// Block device.
    Block,
    /// FIFO.
    Fifo,
}

/// A deterministic tar stream under construction.
#[derive(Debug, Default)]
pub struct Layer {
    out: Vec<u8>,
}

/// One entry's header fields.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// The path bytes, written verbatim (may be hostile).
    pub path: &'a [u8],
    /// Entry type.
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link target (symlinks, hard links).
    pub link: &'a [u8],
    /// Device numbers.
    pub dev: (u32, u32),
    /// Extended attributes, written as PAX `SCHILY.xattr.` records.
    pub xattrs: &'a [(&'a str, &'a [u8])],
    /// File data.
    pub data: &'a [u8],
}

impl<'a> Entry<'a> {
    /// A plain entry of `kind` at `path`, 0:0, mode 0644 (dirs 0755), no data.
    pub fn new(kind: Kind, path: &'a str) -> Self {
        Entry {
            path: path.as_bytes(),
            kind,
            mode: if kind == Kind::Dir { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            link: b"",
            dev: (0, 0),
            xattrs: &[],
            data: b"",
        }
    }
}

impl Layer {
    /// An empty layer.
    pub fn new() -> Self {
        Layer::default()
    }

    /// Appends an entry. Long paths and link targets, and xattrs, go into a PAX header.
    pub fn push(&mut self, e: &Entry<'_>) -> &mut Self {
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        if e.path.len() > 100 {
            pax.push(("path".into(), e.path.to_vec()));
        }
        if e.link.len() > 100 {
            pax.push(("linkpath".into(), e.link.to_vec()));
        }
        for (k, v) in e.xattrs {
            pax.push((format!("SCHILY.xattr.{k}"), v.to_vec()));
        }
        if !pax.is_empty() {
            let mut body = Vec::new();
            for (k, v) in &pax {
                // "%d %s=%s\n" where the length counts itself.
                let rest = k.len() + v.len() + 3;
                let mut len = rest + 1;
                while len.to_string().len() + rest != len {
                    len += 1;
                }
                body.extend_from_slice(format!("{len} {k}=").as_bytes());
                body.extend_from_slice(v);
                body.push(b'\n');
            }
            let mut h = tar::Header::new_ustar();
            set_bytes(&mut h.as_old_mut().name, b"PaxHeaders/entry");
            h.set_entry_type(tar::EntryType::XHeader);
            h.set_mode(0o644);
            h.set_size(body.len() as u64);
            h.set_mtime(0);
            self.header(h, &body);
        }
        let mut h = tar::Header::new_ustar();
        set_bytes(&mut h.as_old_mut().name, &e.path[..e.path.len().min(100)]);
        set_bytes(
            &mut h.as_old_mut().linkname,
            &e.link[..e.link.len().min(100)],
        );
        h.set_entry_type(match e.kind {
            Kind::File => tar::EntryType::Regular,
            Kind::Dir => tar::EntryType::Directory,
            Kind::Symlink => tar::EntryType::Symlink,
            Kind::Hardlink => tar::EntryType::Link,
            Kind::Char => tar::EntryType::Char,
            Kind::Block => tar::EntryType::Block,
            Kind::Fifo => tar::EntryType::Fifo,
        });
        h.set_mode(e.mode);
        h.set_uid(e.uid.into());
        h.set_gid(e.gid.into());
        h.set_mtime(0);
        if matches!(e.kind, Kind::Char | Kind::Block) {
            // Only fails for values beyond the octal field; test inputs are small.
            let _ = h.set_device_major(e.dev.0);
            let _ = h.set_device_minor(e.dev.1);
        }
        h.set_size(if e.kind == Kind::File {
            e.data.len() as u64
        } else {
            0
        });
        let data = if e.kind == Kind::File { e.data } else { b"" };
        self.header(h, data);
        self
    }

    /// Shorthand: a directory.
    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.push(&Entry {
            mode,
            ..Entry::new(Kind::Dir, path)
        })
    }

    /// Shorthand: a regular file.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.push(&Entry {
            mode,
            data,
            ..Entry::new(Kind::File, path)
        })
    }

    /// Shorthand: a symlink.
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.push(&Entry {
            mode: 0o777,
            link: target.as_bytes(),
            ..Entry::new(Kind::Symlink, path)
        })
    }

    /// Shorthand: a hard link to `target` (a path in the image).
    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.push(&Entry {
            link: target.as_bytes(),
            ..Entry::new(Kind::Hardlink, path)
        })
    }

    /// Shorthand: a whiteout for `dir/name`.
    pub fn whiteout(&mut self, dir: &str, name: &str) -> &mut Self {
        let p = format!("{dir}/.wh.{name}");
        self.push(&Entry::new(Kind::File, &p))
    }

    /// Shorthand: an opaque marker for `dir`.
    pub fn opaque(&mut self, dir: &str) -> &mut Self {
        let p = format!("{dir}/.wh..wh..opq");
        self.push(&Entry::new(Kind::File, &p))
    }

    fn header(&mut self, mut h: tar::Header, data: &[u8]) {
        h.set_cksum();
        self.out.extend_from_slice(h.as_bytes());
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
    }

    /// The tar bytes, with the two zero end blocks.
    pub fn finish(&self) -> Vec<u8> {
        let mut out = self.out.clone();
        out.extend(std::iter::repeat_n(0u8, 1024));
        out
    }
}

fn set_bytes(field: &mut [u8], value: &[u8]) {
    field.fill(0);
    field[..value.len()].copy_from_slice(value);
}

/// A written OCI image layout.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The image manifest digest.
    pub manifest: Sha256Digest,
    /// The layer blob digests, in order.
    pub layers: Vec<Sha256Digest>,
}

fn write_blob(dir: &Path, bytes: &[u8]) -> anyhow::Result<(Sha256Digest, u64)> {
    let d = Sha256Digest::of(bytes);
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs)?;
    fs::write(blobs.join(d.to_hex()), bytes)?;
    Ok((d, bytes.len() as u64))
}

/// Writes an OCI image layout at `dir` with one image made of `layers` (tar bytes, each
/// compressed as given) and an image config carrying `config` (the `config` object of the
/// OCI image configuration: Entrypoint, Env, ...). Returns the digests.
pub fn write_layout(
    dir: &Path,
    layers: &[(Vec<u8>, Compression)],
    config: serde_json::Value,
    tag: &str,
) -> anyhow::Result<Layout> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut layer_digests = Vec::new();
    for (tar, c) in layers {
        diff_ids.push(format!("sha256:{}", Sha256Digest::of(tar)));
        let blob = c.compress(tar).context("compressing a layer")?;
        let (d, size) = write_blob(dir, &blob)?;
        layer_digests.push(d);
        descs.push(
            json!({"mediaType": c.media_type(), "digest": format!("sha256:{d}"), "size": size}),
        );
    }
    let cfg = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let (cd, cs) = write_blob(dir, &serde_json::to_vec(&cfg)?)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{cd}"), "size": cs},
        "layers": descs,
    });
    let (md, ms) = write_blob(dir, &serde_json::to_vec(&manifest)?)?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{md}"),
            "size": ms,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
    Ok(Layout {
        manifest: md,
        layers: layer_digests,
    })
}
