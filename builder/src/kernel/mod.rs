//! Reproducible guest kernel build: pinned Debian source package + checked-in `.config` →
//! bzImage, cached by the digest of every input.
//!
//! Steps ([`build`]): verify the source package's sha256; if `CACHE/<key>/bzImage` exists,
//! use it; otherwise extract the package (`dpkg-deb --fsys-tarfile | tar`) and the kernel
//! tarball into a fresh work directory, copy the checked-in config in, run
//! `make olddefconfig` and require the config unchanged, run `make bzImage` with the
//! environment of [`recipe::Recipe`], and store the result in the cache (temp file + rename).
//! The output file is written the same way. The key ([`recipe::Recipe::cache_key`]) covers the
//! source digest, the config bytes, the epoch and [`recipe::RECIPE_VERSION`]; the compiler is
//! covered by the config, which records `CONFIG_CC_VERSION_TEXT` (a different compiler makes
//! `olddefconfig` change it, and the build stops).
//!
//! Tools: `dpkg-deb`, `tar`, `xz`, `make`, `gcc`, `flex`, `bison`, `bc`, libelf and OpenSSL
//! headers (`libelf-dev`, `libssl-dev`).

pub mod config;
pub mod recipe;

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::num::NonZeroUsize;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context as _;
use measurements::Sha256Digest;
use sha2::{Digest, Sha256};

use recipe::Recipe;

/// The resolved config's file name inside the config directory.
pub const CONFIG_FILE: &str = "config-6.12";
/// The kernel tarball inside the source package.
pub const SOURCE_TARBALL: &str = "./usr/src/linux-source-6.12.tar.xz";
/// The directory the tarball unpacks to.
pub const SOURCE_TREE: &str = "linux-source-6.12";
/// The build product, relative to the source tree.
pub const BZIMAGE: &str = "arch/x86/boot/bzImage";
/// Default `SOURCE_DATE_EPOCH`: the pinned source package's own date
/// (2026-11-14 12:56:01 UTC, the mtime dpkg recorded for its files).
pub const DEFAULT_EPOCH: u64 = 1_794_660_961;
/// Default cache directory, relative to the working directory.
pub const DEFAULT_CACHE: &str = "target/kernel-cache";
/// How many lines of tool output an error keeps.
pub const LOG_TAIL_LINES: usize = 40;

/// Options of `kernel build` (the command line's are `cli::KernelBuildArgs`).
#[derive(Debug, Clone)]
pub struct KernelBuildOptions {
    /// The Debian `linux-source-6.12` package (.deb).
    pub source: PathBuf,
    /// Its expected sha256 (hex); the build refuses any other file.
    pub source_sha256: Sha256Digest,
    /// Directory holding the resolved config (`config-6.12`), e.g. kernel-config.
    pub config_dir: PathBuf,
    /// Where to write the bzImage.
    pub out: PathBuf,
    /// Cache directory: results are kept under DIR/<input digest>/bzImage.
    pub cache: PathBuf,
    /// Parallel make jobs (default: the number of CPUs). Does not change the result.
    pub jobs: Option<NonZeroUsize>,
    /// SOURCE_DATE_EPOCH: the build timestamp the kernel embeds.
    pub epoch: u64,
}

/// What a build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelBuild {
    /// The output file (`--out`).
    pub out: PathBuf,
    /// sha256 of the bzImage.
    pub sha256: Sha256Digest,
    /// Its size in bytes.
    pub size: u64,
    /// The cache key (digest of all inputs).
    pub cache_key: Sha256Digest,
    /// Whether the bzImage came from the cache.
    pub cached: bool,
}

/// Kernel build failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The source package is not the pinned one.
    #[error("{path}: sha256 is {actual}, expected {expected}")]
    SourceDigest {
        /// The package.
        path: PathBuf,
        /// The pin.
        expected: Sha256Digest,
        /// What the file hashes to.
        actual: Sha256Digest,
    },
    /// Reading or writing a file failed.
    #[error("{path}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A tool could not be started.
    #[error("cannot run {tool} (is it installed?)")]
    Spawn {
        /// The program.
        tool: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A tool failed; `log_tail` holds the last lines of its output.
    #[error("{step} failed ({status}); last output:\n{log_tail}")]
    Tool {
        /// What was being done, e.g. `make bzImage`.
        step: String,
        /// The exit status.
        status: std::process::ExitStatus,
        /// The last [`LOG_TAIL_LINES`] lines of output.
        log_tail: String,
    },
    /// `make olddefconfig` changed the checked-in config: it does not match this source or
    /// this compiler.
    #[error(
        "{path}: make olddefconfig changed {} option(s): {}; regenerate it (kernel-config/README.md)",
        diffs.len(),
        diffs.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    ConfigChanged {
        /// The checked-in config.
        path: PathBuf,
        /// The options that differ (checked-in → resolved).
        diffs: Vec<config::OptionDiff>,
    },
    /// `make olddefconfig` changed only comments or order.
    #[error(
        "{path}: make olddefconfig rewrote the file (same options, different text); regenerate it"
    )]
    ConfigRewritten {
        /// The checked-in config.
        path: PathBuf,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// CLI entry point: [`build`] with `anyhow` context. `progress` receives one line per step
/// and a summary of `make`'s output every few hundred lines.
pub fn run_build(
    args: &KernelBuildOptions,
    progress: &dyn Fn(&str),
) -> anyhow::Result<KernelBuild> {
    build(args, progress).with_context(|| {
        format!(
            "building the kernel from {} with {}",
            args.source.display(),
            args.config_dir.join(CONFIG_FILE).display()
        )
    })
}

/// Builds (or fetches from the cache) the bzImage and writes it to `args.out`.
pub fn build(args: &KernelBuildOptions, progress: &dyn Fn(&str)) -> Result<KernelBuild, Error> {
    let config_path = args.config_dir.join(CONFIG_FILE);
    let config = fs_err::read(&config_path).map_err(io_err(&config_path))?;

    progress(&format!("kernel: verifying {}", args.source.display()));
    let actual = sha256_file(&args.source)?;
    if actual != args.source_sha256 {
        return Err(Error::SourceDigest {
            path: args.source.clone(),
            expected: args.source_sha256,
            actual,
        });
    }
    let recipe = Recipe {
        source_sha256: actual,
        config,
        epoch: args.epoch,
    };
    let key = recipe.cache_key();
    let entry = args.cache.join(key.to_hex());
    let cached_image = entry.join("bzImage");
    let cached = cached_image.is_file();
    if cached {
        progress(&format!("kernel: cached {}", cached_image.display()));
    } else {
        fs_err::create_dir_all(&args.cache).map_err(io_err(&args.cache))?;
        let jobs = args
            .jobs
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, NonZeroUsize::get);
        let built = compile(
            &recipe,
            &args.source,
            &args.cache,
            &config_path,
            jobs,
            progress,
        )?;
        fs_err::create_dir_all(&entry).map_err(io_err(&entry))?;
        // Same file system (both under the cache directory): the rename is atomic.
        fs_err::rename(&built, &cached_image).map_err(io_err(&cached_image))?;
    }
    let bytes = fs_err::read(&cached_image).map_err(io_err(&cached_image))?;
    copy_atomic(&cached_image, &args.out)?;
    let out = KernelBuild {
        out: args.out.clone(),
        sha256: Sha256Digest::of(&bytes),
        size: bytes.len() as u64,
        cache_key: key,
        cached,
    };
    progress(&format!(
        "kernel: {} ({} bytes, sha256 {})",
        out.out.display(),
        out.size,
        out.sha256
    ));
    Ok(out)
}

/// The sha256 of a file, streamed.
fn sha256_file(path: &Path) -> Result<Sha256Digest, Error> {
    let mut f = fs_err::File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        // `read` returns at most `buf.len()` bytes.
        h.update(&buf[..n]);
    }
    Ok(Sha256Digest(h.finalize().into()))
}

/// Copies `from` to `to` through a temporary file beside `to`, renamed into place.
fn copy_atomic(from: &Path, to: &Path) -> Result<(), Error> {
    let parent = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    fs_err::create_dir_all(&parent).map_err(io_err(&parent))?;
    let bytes = fs_err::read(from).map_err(io_err(from))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".bzImage.partial-")
        .tempfile_in(&parent)
        .map_err(io_err(&parent))?;
    tmp.write_all(&bytes).map_err(io_err(tmp.path()))?;
    // tempfile creates 0600; the bzImage is not secret and its mode should not depend on that.
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(io_err(tmp.path()))?;
    tmp.as_file().sync_all().map_err(io_err(to))?;
    tmp.persist(to).map_err(|e| Error::Io {
        path: to.to_owned(),
        source: e.error,
    })?;
    Ok(())
}

/// Extracts, configures and compiles in a fresh work directory under `cache`; returns the path
/// of the bzImage copied out of the work tree (the tree is removed).
fn compile(
    recipe: &Recipe,
    deb: &Path,
    cache: &Path,
    config_path: &Path,
    jobs: usize,
    progress: &dyn Fn(&str),
) -> Result<PathBuf, Error> {
    let work = tempfile::Builder::new()
        .prefix("work-")
        .tempdir_in(cache)
        .map_err(io_err(cache))?;
    let work_dir = std::path::absolute(work.path()).map_err(io_err(work.path()))?;
    let deb = std::path::absolute(deb).map_err(io_err(deb))?;

    progress("kernel: extracting the source package");
    // umask 022 for every tool; the pipe keeps the 150 MB tarball off the disk twice.
    run_logged(
        "extracting the source package",
        "sh",
        [
            "-c".into(),
            "umask 022 && dpkg-deb --fsys-tarfile \"$1\" | tar -xf - -C \"$2\" \"$3\"".into(),
            "sh".into(),
            deb.into_os_string(),
            work_dir.clone().into_os_string(),
            SOURCE_TARBALL.into(),
        ],
        &recipe.env(),
        &mut |_| {},
    )?;
    progress("kernel: unpacking the kernel tarball");
    let tarball = work_dir.join(SOURCE_TARBALL);
    run_logged(
        "unpacking the kernel tarball",
        "sh",
        [
            "-c".into(),
            "umask 022 && tar -xJf \"$1\" -C \"$2\" && rm -f \"$1\"".into(),
            "sh".into(),
            tarball.into_os_string(),
            work_dir.clone().into_os_string(),
        ],
        &recipe.env(),
        &mut |_| {},
    )?;

    let src = work_dir.join(SOURCE_TREE);
    let dot_config = src.join(".config");
    fs_err::write(&dot_config, &recipe.config).map_err(io_err(&dot_config))?;
    progress("kernel: make olddefconfig");
    make(recipe, &src, jobs, &["olddefconfig"], &mut |_| {})?;
    let resolved = fs_err::read(&dot_config).map_err(io_err(&dot_config))?;
    if resolved != recipe.config {
        let diffs = config::diff(
            &String::from_utf8_lossy(&recipe.config),
            &String::from_utf8_lossy(&resolved),
        );
        return Err(if diffs.is_empty() {
            Error::ConfigRewritten {
                path: config_path.to_owned(),
            }
        } else {
            Error::ConfigChanged {
                path: config_path.to_owned(),
                diffs,
            }
        });
    }

    progress(&format!(
        "kernel: make -j{jobs} bzImage (about 10 minutes on 2 cores)"
    ));
    let mut lines = 0u64;
    make(recipe, &src, jobs, &["bzImage"], &mut |line| {
        lines = lines.saturating_add(1);
        if lines.is_multiple_of(250) {
            progress(&format!(
                "kernel: {lines} lines of make output; {}",
                line.trim()
            ));
        }
    })?;
    let product = src.join(BZIMAGE);
    let kept = cache.join(format!(".{}.bzImage", recipe.cache_key().to_hex()));
    fs_err::copy(&product, &kept).map_err(io_err(&product))?;
    // Dropping `work` removes the tree; an error doing so is not the build's concern.
    drop(work);
    Ok(kept)
}

fn make(
    recipe: &Recipe,
    src: &Path,
    jobs: usize,
    targets: &[&str],
    on_line: &mut dyn FnMut(&str),
) -> Result<(), Error> {
    let mut args: Vec<OsString> = vec![
        "-c".into(),
        "umask 022 && exec make \"$@\"".into(),
        "sh".into(),
    ];
    args.extend(recipe.make_args(src, jobs, targets));
    run_logged(
        &format!("make {}", targets.join(" ")),
        "sh",
        args,
        &recipe.env(),
        on_line,
    )
}

/// Runs `program` with exactly `env`, stdout and stderr merged; passes each output line to
/// `on_line` and keeps the last [`LOG_TAIL_LINES`] for the error.
fn run_logged(
    step: &str,
    program: &str,
    args: impl IntoIterator<Item = OsString>,
    env: &[(&'static str, String)],
    on_line: &mut dyn FnMut(&str),
) -> Result<(), Error> {
    let spawn_err = |source| Error::Spawn {
        tool: program.to_owned(),
        source,
    };
    let (reader, writer) = io::pipe().map_err(spawn_err)?;
    let writer2 = writer.try_clone().map_err(spawn_err)?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2);
    let mut child = cmd.spawn().map_err(spawn_err)?;
    // The Command holds the pipe's write ends; drop it so the reader sees end of file.
    drop(cmd);
    let mut tail: VecDeque<String> = VecDeque::with_capacity(LOG_TAIL_LINES);
    for line in BufReader::new(reader).split(b'\n') {
        let line = String::from_utf8_lossy(&line.map_err(spawn_err)?).into_owned();
        on_line(&line);
        if tail.len() == LOG_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    let status = child.wait().map_err(spawn_err)?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Tool {
            step: step.to_owned(),
            status,
            log_tail: Vec::from(tail).join("\n"),
        })
    }
}
