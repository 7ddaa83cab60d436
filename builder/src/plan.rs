//! Stage 0: the command line plus the parsed manifest become a [`Plan`] the pipeline uses.
//!
//! Pipeline code never sees a command-line type (those live in `cli` alone): [`Plan::new`]
//! resolves the manifest's relative paths against the manifest's directory, so a build works
//! from any working directory.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use measurements::Sha256Digest;

use crate::manifest::{self, Manifest};

/// Everything a build needs to know, resolved.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The parsed manifest.
    pub manifest: Manifest,
    /// sha256 of the manifest file's bytes.
    pub manifest_sha256: Sha256Digest,
    /// The directory relative paths in the manifest are resolved against.
    pub base_dir: PathBuf,
    /// Where the output directory goes.
    pub out_dir: PathBuf,
    /// Replace an existing output directory.
    pub force: bool,
    /// Cargo's home (registry cache), for building Rust components: `$CARGO_HOME`, else
    /// `$HOME/.cargo`. Remapped out of every binary.
    pub cargo_home: PathBuf,
    /// Test-only non-determinism injection (`ENCLAVE_BUILDER_TEST_INJECT`); `None` in real
    /// builds, and absent from a binary built without the `test-inject` feature.
    #[cfg(feature = "test-inject")]
    pub inject: Option<crate::inject::Inject>,
}

impl Plan {
    /// Reads and parses the manifest at `manifest_path`.
    pub fn new(manifest_path: &Path, out_dir: &Path, force: bool) -> anyhow::Result<Plan> {
        let bytes = fs_err::read(manifest_path).context("reading the manifest")?;
        let text = std::str::from_utf8(&bytes)
            .with_context(|| format!("{} is not UTF-8 text", manifest_path.display()))?;
        let manifest = manifest::parse(text, &manifest_path.display().to_string())?;
        let base_dir = match manifest_path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .unwrap_or_else(|| PathBuf::from("/root/.cargo"));
        Ok(Plan {
            cargo_home,
            manifest,
            manifest_sha256: Sha256Digest::of(&bytes),
            base_dir,
            out_dir: out_dir.to_owned(),
            force,
            // The one place the test-only injection switch is read (see crate::inject).
            #[cfg(feature = "test-inject")]
            inject: crate::inject::Inject::from_env(|k| std::env::var_os(k))?,
        })
    }
}

/// The Rust toolchain's homes (`CARGO_HOME`, `RUSTUP_HOME`), resolved from this process's
/// environment with rustup's defaults under `$HOME`. `check` passes them on explicitly, so a
/// build under another `HOME` still finds the pinned toolchain and the crate cache.
pub fn toolchain_env() -> Vec<(&'static str, PathBuf)> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let resolve = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(default)))
    };
    let mut out = Vec::new();
    if let Some(p) = resolve("CARGO_HOME", ".cargo") {
        out.push(("CARGO_HOME", p));
    }
    if let Some(p) = resolve("RUSTUP_HOME", ".rustup") {
        out.push(("RUSTUP_HOME", p));
    }
    out
}

/// Where `push`/`pull` look for registry credentials, from the environment.
pub fn registry_auth_sources() -> crate::release::auth::AuthSources {
    let path = |var| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    crate::release::auth::AuthSources {
        registry_auth_file: path("REGISTRY_AUTH_FILE"),
        xdg_runtime_dir: path("XDG_RUNTIME_DIR"),
        home: path("HOME"),
    }
}
