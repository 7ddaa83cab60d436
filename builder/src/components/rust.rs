//! Rust components built from a Cargo workspace (the guest init, the demo server):
//! reproducibly, and with the crate graph that went into them (for the build record).
//!
//! The recipe (see `guest-init/README.md`): a release build for `x86_64-unknown-linux-gnu`
//! with glibc linked statically (`+crt-static`: a static-pie ELF that needs no libc in the
//! image), one codegen unit, no debug info, symbols stripped, and every host path (cargo home,
//! workspace, target dir) remapped to a fixed name, with `--locked` so `Cargo.lock` is the
//! crate graph. Two builds from different checkouts and target directories give identical
//! bytes (checked by hand; see the README). The toolchain itself is pinned by
//! `rust-toolchain.toml`.

use std::path::{Path, PathBuf};

/// The target components are built for.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";
/// The workspace package of the guest init.
pub const INIT_PACKAGE: &str = "guest-init";
/// The guest init's binary.
pub const INIT_BIN: &str = "enclave-init";

/// Cargo's `cache.auto-clean-frequency`, set to `never` for every cargo this module runs.
const CACHE_AUTO_CLEAN: (&str, &str) = ("CARGO_CACHE_AUTO_CLEAN_FREQUENCY", "never");

/// A composed `cargo build` invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RustBuild {
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

pub use measurements::record::Crate as CrateRecord;

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
    /// The package is not in the workspace.
    #[error("package `{0}` is not in the workspace")]
    NoPackage(String),
}

/// Composes the reproducible build of the guest init.
pub fn init_build_command(workspace: &Path, target_dir: &Path, cargo_home: &Path) -> RustBuild {
    build_command(workspace, target_dir, cargo_home, INIT_PACKAGE, INIT_BIN)
}

/// Composes the reproducible build of binary `bin` of workspace package `package`.
pub fn build_command(
    workspace: &Path,
    target_dir: &Path,
    cargo_home: &Path,
    package: &str,
    bin: &str,
) -> RustBuild {
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
        // Never let cargo's automatic clean of the global cache run from a build: it would
        // delete the user's downloaded crates, and under a shifted clock (check's `clock`
        // variation) it deletes all of them and then fails to download them again.
        (CACHE_AUTO_CLEAN.0.to_owned(), CACHE_AUTO_CLEAN.1.to_owned()),
    ];
    let args = [
        "build",
        "--release",
        "--locked",
        "-p",
        package,
        "--bin",
        bin,
        "--target",
        TARGET,
    ]
    .map(str::to_owned)
    .to_vec();
    RustBuild {
        program: "cargo".to_owned(),
        args,
        env,
        cwd: workspace.to_owned(),
        output: target_dir.join(TARGET).join("release").join(bin),
    }
}

/// Runs `cargo metadata` in `workspace` and returns `package`'s crate graph (normal and build
/// dependencies, for [`TARGET`]), sorted, with checksums from `Cargo.lock`.
pub fn crate_graph(workspace: &Path, package: &str) -> Result<Vec<CrateRecord>, Error> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .current_dir(workspace)
        .env(CACHE_AUTO_CLEAN.0, CACHE_AUTO_CLEAN.1)
        .other_options(vec![
            "--locked".to_owned(),
            "--filter-platform".to_owned(),
            TARGET.to_owned(),
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
    crate_graph_from(&metadata, &lock.package, package)
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

/// The pure half of [`crate_graph`]: walks the resolve graph from `package`.
pub fn crate_graph_from(
    metadata: &cargo_metadata::Metadata,
    lock: &[LockedPackage],
    package: &str,
) -> Result<Vec<CrateRecord>, Error> {
    use cargo_metadata::DependencyKind;
    use std::collections::BTreeSet;

    let root = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == package)
        .ok_or_else(|| Error::NoPackage(package.to_owned()))?;
    let resolve = metadata
        .resolve
        .as_ref()
        .ok_or_else(|| Error::NoPackage(package.to_owned()))?;
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
            let checksum_source = source.clone();
            let version = p.version.to_string();
            let checksum = lock
                .iter()
                .find(|l| {
                    l.name == p.name.as_str() && l.version == version && l.source == checksum_source
                })
                .and_then(|l| l.checksum.clone());
            CrateRecord {
                name: p.name.to_string(),
                version,
                // The kind of source only: the checksum pins a registry crate's bytes, and the
                // record stays free of registry addresses.
                source: source.map(|s| source_kind(&s)),
                checksum,
            }
        })
        .collect();
    out.sort();
    Ok(out)
}

/// `registry`, `git` or `path` for a Cargo source id (`registry+URL`, `sparse+URL`, `git+URL`).
fn source_kind(id: &str) -> String {
    match id.split_once('+').map(|(kind, _)| kind) {
        Some("registry" | "sparse") => "registry".to_owned(),
        Some(kind) => kind.to_owned(),
        None => "path".to_owned(),
    }
}

/// A built component.
#[derive(Debug, Clone)]
pub struct Built {
    /// The binary (in the component target directory).
    pub path: PathBuf,
    /// Its sha256.
    pub sha256: measurements::Sha256Digest,
    /// Its size.
    pub size: u64,
    /// The crates compiled into it.
    pub crates: Vec<CrateRecord>,
}

/// Why a component could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `cargo` could not be started.
    #[error("starting `cargo` to build {package}/{bin}: is the Rust toolchain installed?")]
    Spawn {
        /// Package.
        package: String,
        /// Binary.
        bin: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// `cargo build` failed.
    #[error("`cargo build -p {package} --bin {bin}` failed ({status}); its last output:\n{tail}")]
    Cargo {
        /// Package.
        package: String,
        /// Binary.
        bin: String,
        /// Exit status.
        status: std::process::ExitStatus,
        /// The last lines of its stderr.
        tail: String,
    },
    /// Reading the built binary failed.
    #[error("reading the built binary {path}")]
    Output {
        /// The binary.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The crate graph could not be read.
    #[error(transparent)]
    Graph(#[from] Error),
}

/// Environment variables that could change a component's bytes behind the recipe's back; they
/// are removed from cargo's environment.
const SCRUBBED_ENV: &[&str] = &[
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_BUILD_TARGET",
    "CARGO_PROFILE_RELEASE_OPT_LEVEL",
    "CARGO_PROFILE_RELEASE_LTO",
    "CARGO_PROFILE_RELEASE_PANIC",
    "CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS",
    "CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS",
    "SOURCE_DATE_EPOCH",
];

/// Builds `bin` of `package` in `workspace` with the reproducible recipe, into `target_dir`.
/// `progress` gets a line for each crate cargo starts compiling (`[N] Compiling NAME vX`), so
/// a first build that takes minutes shows where it is.
pub fn build(
    workspace: &Path,
    target_dir: &Path,
    cargo_home: &Path,
    package: &str,
    bin: &str,
    progress: &dyn Fn(&str),
) -> Result<Built, BuildError> {
    use std::io::BufRead as _;
    let recipe = build_command(workspace, target_dir, cargo_home, package, bin);
    let mut cmd = std::process::Command::new(&recipe.program);
    cmd.args(&recipe.args).current_dir(&recipe.cwd);
    for k in SCRUBBED_ENV {
        cmd.env_remove(k);
    }
    cmd.envs(recipe.env.iter().map(|(k, v)| (k, v)))
        .env("CARGO_HOME", cargo_home)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let spawn_error = |source| BuildError::Spawn {
        package: package.to_owned(),
        bin: bin.to_owned(),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn_error)?;
    // cargo's stderr, read as it comes: progress per crate, the last lines kept for an error.
    let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut compiled = 0usize;
    if let Some(stderr) = child.stderr.take() {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let trimmed = line.trim_start();
            if trimmed.starts_with("Compiling ") {
                compiled += 1;
                progress(&format!("{package}/{bin}: [{compiled}] {trimmed}"));
            }
            if tail.len() == 20 {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
    let status = child.wait().map_err(spawn_error)?;
    if !status.success() {
        return Err(BuildError::Cargo {
            package: package.to_owned(),
            bin: bin.to_owned(),
            status,
            tail: Vec::from(tail).join("\n"),
        });
    }
    let (sha256, size) =
        crate::pin::hash_file(&recipe.output).map_err(|source| BuildError::Output {
            path: recipe.output.clone(),
            source,
        })?;
    let crates = crate_graph(workspace, package)?;
    Ok(Built {
        path: recipe.output,
        sha256,
        size,
        crates,
    })
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
        let graph = crate_graph(&ws, INIT_PACKAGE).unwrap();
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
