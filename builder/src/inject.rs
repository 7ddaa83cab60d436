//! Test-only non-determinism injection: makes a build misbehave the way real builders do, so
//! the tests can show that `check` catches each kind and says where.
//!
//! Compiled only with the cargo feature `test-inject` (the test suites enable it; the release
//! binary has no such switch, and `reproducibility-tests/tests/check.rs` proves a binary built
//! without the feature ignores the variable). The switch is the environment variable
//! [`INJECT_ENV`], read once, in [`crate::plan`] (the only module that reads the environment).
//! Without it nothing here changes a build.
//!
//! `unsorted-dir` does not make the EROFS writer emit unsorted directory entries: the tree is a
//! `BTreeMap` and the writer, the kernel and our reader all require sorted names, so that
//! cannot happen without rewriting the writer. Instead it adds a file whose content is a
//! directory listing in `read_dir` order of a scratch directory with random names, which is
//! the realistic form of the bug (a build step that lists a directory it created).

use std::collections::hash_map::RandomState;
use std::ffi::OsStr;
use std::hash::{BuildHasher as _, Hasher as _};
use std::io::Cursor;
use std::os::unix::fs::PermissionsExt as _;

use anyhow::Context as _;

use crate::content::ContentStore;
use crate::tree::{self, Leaf, LeafKind, Metadata, Tree};

/// The environment variable that selects an injection (tests only).
pub const INJECT_ENV: &str = "ENCLAVE_BUILDER_TEST_INJECT";

/// Where injected files go in the image.
pub const INJECT_PATH: &str = "/etc/enclave-builder-inject";

/// One kind of injected non-determinism.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Inject {
    /// A file whose content is the wall clock (nanoseconds since the epoch).
    Timestamp,
    /// A file whose content lists a scratch directory (random names) in `read_dir` order.
    UnsortedDir,
    /// A file whose content includes the environment's `TZ` (captured when the plan is made).
    EnvFile {
        /// The `TZ` value, or empty.
        tz: String,
    },
    /// A file whose mode comes from the process umask (`0o666 & !umask`).
    UmaskMode,
    /// The dm-verity salt gets random bytes.
    RandomSalt,
}

/// An unknown [`INJECT_ENV`] value.
#[derive(Debug, thiserror::Error)]
#[error(
    "{INJECT_ENV}={value:?}: expected timestamp, unsorted-dir, env-file, umask-mode or random-salt"
)]
pub struct UnknownInjection {
    /// The value found.
    pub value: String,
}

impl Inject {
    /// Reads the injection from an environment lookup (`plan.rs` passes `std::env::var_os`).
    pub fn from_env(
        var: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<Option<Inject>, UnknownInjection> {
        let Some(value) = var(INJECT_ENV) else {
            return Ok(None);
        };
        let value = value.to_string_lossy().into_owned();
        let tz = || {
            var("TZ")
                .as_deref()
                .map(OsStr::to_string_lossy)
                .unwrap_or_default()
                .into_owned()
        };
        Ok(Some(match value.as_str() {
            "" => return Ok(None),
            "timestamp" => Inject::Timestamp,
            "unsorted-dir" => Inject::UnsortedDir,
            "env-file" => Inject::EnvFile { tz: tz() },
            "umask-mode" => Inject::UmaskMode,
            "random-salt" => Inject::RandomSalt,
            _ => return Err(UnknownInjection { value }),
        }))
    }
}

/// Pipeline hook after the tree is assembled: adds the injected file, if any.
pub fn into_tree(
    inject: Option<&Inject>,
    tree: &mut Tree,
    store: &ContentStore,
) -> anyhow::Result<()> {
    let (content, mode) = match inject {
        None | Some(Inject::RandomSalt) => return Ok(()),
        Some(Inject::Timestamp) => (wall_clock_nanos().to_string().into_bytes(), 0o644),
        Some(Inject::UnsortedDir) => (read_dir_listing()?, 0o644),
        Some(Inject::EnvFile { tz }) => (format!("built with TZ={tz}\n").into_bytes(), 0o644),
        Some(Inject::UmaskMode) => (b"mode from the umask\n".to_vec(), umask_mode()?),
    };
    let (content, _) = store.put(&mut Cursor::new(&content), content.len() as u64)?;
    let leaf = Leaf {
        meta: Metadata {
            mode,
            uid: 0,
            gid: 0,
            xattrs: Default::default(),
        },
        kind: LeafKind::Regular(content),
    };
    tree::apply::insert_file(tree, INJECT_PATH.as_bytes(), leaf)?;
    Ok(())
}

/// Pipeline hook for the verity salt: random bytes under `random-salt`, else `salt` unchanged.
pub fn salt(inject: Option<&Inject>, salt: Vec<u8>) -> Vec<u8> {
    if inject != Some(&Inject::RandomSalt) {
        return salt;
    }
    (0..salt.len().div_ceil(8))
        .flat_map(|_| random_u64().to_le_bytes())
        .take(salt.len())
        .collect()
}

/// Random bits from the standard library's per-process hash keys (no extra dependency).
fn random_u64() -> u64 {
    RandomState::new().build_hasher().finish()
}

// The test-only injection is the one place the wall clock may reach an artifact.
#[allow(clippy::disallowed_methods)]
fn wall_clock_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// Creates a scratch directory of randomly named files and lists it in `read_dir` order.
fn read_dir_listing() -> anyhow::Result<Vec<u8>> {
    let dir = tempfile::tempdir().context("inject: scratch directory")?;
    for _ in 0..8 {
        fs_err::write(dir.path().join(format!("{:016x}", random_u64())), b"")?;
    }
    let mut out = Vec::new();
    for e in fs_err::read_dir(dir.path())? {
        out.extend_from_slice(e?.file_name().as_encoded_bytes());
        out.push(b'\n');
    }
    Ok(out)
}

/// The mode a freshly created file gets: `0o666 & !umask`.
fn umask_mode() -> anyhow::Result<u32> {
    let dir = tempfile::tempdir().context("inject: scratch directory")?;
    let path = dir.path().join("probe");
    fs_err::File::create(&path)?;
    Ok(fs_err::metadata(&path)?.permissions().mode() & 0o777)
}
