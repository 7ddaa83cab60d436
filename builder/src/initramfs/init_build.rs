//! How the guest init (`guest-init`, binary `enclave-init`) is built reproducibly, and the
//! crate graph that went into it (for the build record).
//!
//! The recipe (see `guest-init/README.md`): a release build for `x86_64-unknown-linux-gnu`
//! with glibc linked statically (`+crt-static`: a static-pie ELF that needs no libc in the
//! image), one codegen unit, no debug info, symbols stripped, and every host path (cargo home,
//! workspace, target dir) remapped to a fixed name, with `--locked` so `Cargo.lock` is the
//! crate graph. Two builds from different checkouts and target directories give identical
//! bytes (checked by hand; see the README). The toolchain itself is pinned by
//! `rust-toolchain.toml`.

use std::path::{Path, PathBuf};

/// The target the init is built for.
pub const INIT_TARGET: &str = "x86_64-unknown-linux-gnu";
/// The workspace package and binary of the init.
pub const INIT_PACKAGE: &str = "guest-init";
/// The binary's name.
pub const INIT_BIN: &str = "enclave-init";

/// A composed `cargo build` invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitBuild {
    /// The program (`cargo`).
    pub program: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Environment to set (on top of the caller's; `RUSTFLAGS` is overridden by
    /// `CARGO_ENCODED_RUSTFLAGS`).
    pub env: Vec<(String, String)>,
    /// The working directory (the workspace root).
    pub cwd: PathBuf,
    /// Where the binary appears.
    pub output: PathBuf,
}

/// One crate of the init's dependency graph, for the record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct CrateRecord {
    /// Crate name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Source (`registry+https://...`, `git+...`), `None` for workspace members.
    pub source: Option<String>,
    /// The `Cargo.lock` sha256 of the `.crate` file, for registry crates.
    pub checksum: Option<String>,
}

/// Why the crate graph could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `cargo metadata` failed.
    #[error("cargo metadata in {dir}: {source}")]
    Metadata {
        /// The workspace.
        dir: PathBuf,
        /// The error.
        source: cargo_metadata::Error,
    },
    /// `Cargo.lock` is missing or unreadable.
    #[error("reading {path}: {source}")]
    Lock {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// `Cargo.lock` is not valid TOML of the expected shape.
    #[error("parsing {path}: {source}")]
    LockSyntax {
        /// The file.
        path: PathBuf,
        /// The error.
        source: toml::de::Error,
    },
    /// The init package is not in the workspace.
    #[error("package `{INIT_PACKAGE}` is not in the workspace")]
    NoPackage,
}

/// Composes the reproducible build of the init.
pub fn init_build_command(workspace: &Path, target_dir: &Path, cargo_home: &Path) -> InitBuild {
    let remap = |from: &Path, to: &str| format!("--remap-path-prefix={}={to}", from.display());
    let rustflags = [
        "-Ctarget-feature=+crt-static".to_owned(),
        "-Cdebuginfo=0".to_owned(),
        "-Cstrip=symbols".to_owned(),
        "-Ccodegen-units=1".to_owned(),
        remap(cargo_home, "/cargo"),
        remap(workspace, "/build"),
        remap(target_dir, "/target"),
    ];
    let env = vec![
        // \x1f-separated, so paths with spaces survive; takes precedence over RUSTFLAGS and
        // `build.rustflags`. With an explicit --target it applies to the target only, not to
        // build scripts or proc macros.
        ("CARGO_ENCODED_RUSTFLAGS".to_owned(), rustflags.join("\x1f")),
        (
            "CARGO_TARGET_DIR".to_owned(),
            target_dir.display().to_string(),
        ),
        (
            "CARGO_PROFILE_RELEASE_CODEGEN_UNITS".to_owned(),
            "1".to_owned(),
        ),
        ("CARGO_PROFILE_RELEASE_DEBUG".to_owned(), "0".to_owned()),
        (
            "CARGO_PROFILE_RELEASE_STRIP".to_owned(),
            "symbols".to_owned(),
        ),
        ("CARGO_INCREMENTAL".to_owned(), "0".to_owned()),
    ];
    let args = [
        "build",
        "--release",
        "--locked",
        "-p",
        INIT_PACKAGE,
        "--bin",
        INIT_BIN,
        "--target",
        INIT_TARGET,
    ]
    .map(str::to_owned)
    .to_vec();
    InitBuild {
        program: "cargo".to_owned(),
        args,
        env,
        cwd: workspace.to_owned(),
        output: target_dir.join(INIT_TARGET).join("release").join(INIT_BIN),
    }
}

/// Runs `cargo metadata` in `workspace` and returns the init's crate graph (normal and build
/// dependencies, for [`INIT_TARGET`]), sorted, with checksums from `Cargo.lock`.
pub fn crate_graph(workspace: &Path) -> Result<Vec<CrateRecord>, Error> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .current_dir(workspace)
        .other_options(vec![
            "--locked".to_owned(),
            "--filter-platform".to_owned(),
            INIT_TARGET.to_owned(),
        ])
        .exec()
        .map_err(|source| Error::Metadata {
            dir: workspace.to_owned(),
            source,
        })?;
    let lock_path = metadata.workspace_root.as_std_path().join("Cargo.lock");
    let lock = fs_err::read_to_string(&lock_path).map_err(|source| Error::Lock {
        path: lock_path.clone(),
        source,
    })?;
    let lock: Lock = toml::from_str(&lock).map_err(|source| Error::LockSyntax {
        path: lock_path,
        source,
    })?;
    crate_graph_from(&metadata, &lock.package)
}

/// `Cargo.lock`, the part that is read.
#[derive(serde::Deserialize)]
struct Lock {
    #[serde(default)]
    package: Vec<LockedPackage>,
}

/// One `[[package]]` of `Cargo.lock`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LockedPackage {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Source.
    pub source: Option<String>,
    /// Checksum.
    pub checksum: Option<String>,
}

/// The pure half of [`crate_graph`]: walks the resolve graph from the init package.
pub fn crate_graph_from(
    metadata: &cargo_metadata::Metadata,
    lock: &[LockedPackage],
) -> Result<Vec<CrateRecord>, Error> {
    use cargo_metadata::DependencyKind;
    use std::collections::BTreeSet;

    let root = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == INIT_PACKAGE)
        .ok_or(Error::NoPackage)?;
    let resolve = metadata.resolve.as_ref().ok_or(Error::NoPackage)?;
    let mut seen: BTreeSet<&cargo_metadata::PackageId> = BTreeSet::new();
    let mut stack = vec![&root.id];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let Some(node) = resolve.nodes.iter().find(|n| &n.id == id) else {
            continue;
        };
        for dep in &node.deps {
            let used = dep
                .dep_kinds
                .iter()
                .any(|k| matches!(k.kind, DependencyKind::Normal | DependencyKind::Build));
            if used {
                stack.push(&dep.pkg);
            }
        }
    }
    let mut out: Vec<CrateRecord> = metadata
        .packages
        .iter()
        .filter(|p| seen.contains(&p.id))
        .map(|p| {
            let source = p.source.as_ref().map(|s| s.repr.clone());
            let version = p.version.to_string();
            let checksum = lock
                .iter()
                .find(|l| l.name == p.name.as_str() && l.version == version && l.source == source)
                .and_then(|l| l.checksum.clone());
            CrateRecord {
                name: p.name.to_string(),
                version,
                source,
                checksum,
            }
        })
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_remaps_every_host_path() {
        let b = init_build_command(
            Path::new("/w/ws"),
            Path::new("/w/target"),
            Path::new("/home/u/.cargo"),
        );
        assert_eq!(
            b.output,
            Path::new("/w/target/x86_64-unknown-linux-gnu/release/enclave-init")
        );
        let flags = &b
            .env
            .iter()
            .find(|(k, _)| k == "CARGO_ENCODED_RUSTFLAGS")
            .unwrap()
            .1;
        let flags: Vec<&str> = flags.split('\x1f').collect();
        assert!(flags.contains(&"-Ctarget-feature=+crt-static"));
        assert!(flags.contains(&"--remap-path-prefix=/home/u/.cargo=/cargo"));
        assert!(flags.contains(&"--remap-path-prefix=/w/ws=/build"));
        assert!(flags.contains(&"--remap-path-prefix=/w/target=/target"));
        assert!(b.args.contains(&"--locked".to_owned()));
    }

    #[test]
    fn graph_of_this_workspace() {
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let graph = crate_graph(&ws).unwrap();
        let names: Vec<&str> = graph.iter().map(|c| c.name.as_str()).collect();
        assert!(names.contains(&"guest-init"), "{names:?}");
        assert!(names.contains(&"rustix"), "{names:?}");
        // Dev-dependencies are not part of the binary.
        assert!(!names.contains(&"proptest"), "{names:?}");
        for c in &graph {
            assert_eq!(c.source.is_some(), c.checksum.is_some(), "{c:?}");
        }
    }
}
