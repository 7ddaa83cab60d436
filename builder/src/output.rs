//! The output directory: built in a staging directory beside it, renamed into place whole.
//!
//! A failed or interrupted build never leaves a directory at the requested path that looks
//! finished: until [`Staging::commit`] the artifacts live in `.<name>.partial-XXXX` next to it
//! (removed on error; a killed process leaves only that hidden, clearly partial directory, which
//! the next build of the same output removes: see [`Staging`]).

use std::path::{Path, PathBuf};

/// Problems with the output path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The output directory exists and `--force` was not given.
    #[error("{0} already exists; choose another --out or pass --force to replace it")]
    Exists(PathBuf),
    /// `--force` would replace something that is not a previous build output.
    #[error("{0} exists but holds no record.json, so it is not a previous build output; refusing to replace it")]
    NotAnOutput(PathBuf),
    /// The output path has no file name (e.g. `/` or `..`).
    #[error("{0} cannot be an output directory; give a path such as out/demo")]
    BadPath(PathBuf),
    /// Creating, renaming or removing failed.
    #[error("preparing the output directory {path}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// A staging directory that becomes the output directory on commit.
///
/// Beside it, `.<name>.partial-XXXX.lock` is held with an exclusive `flock` for the build's
/// lifetime (the kernel releases it when the process dies, even by SIGKILL). It is created
/// before the directory, so a partial directory whose lock nobody holds, or that has no lock,
/// belongs to a build that is no longer running: [`Staging::new`] removes those.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    target: PathBuf,
    force: bool,
    /// Removed when dropped (after the directory, see `Drop`).
    _lock: tempfile::NamedTempFile,
    committed: bool,
}

impl Staging {
    /// Creates the staging directory beside `target` (same file system, so the final rename is
    /// atomic), after removing the partial directories of earlier builds of `target` that are
    /// no longer running. Fails early if `target` exists and `force` is false.
    pub fn new(target: &Path, force: bool) -> Result<Self, Error> {
        let name = target
            .file_name()
            .ok_or_else(|| Error::BadPath(target.to_owned()))?;
        if target.exists() && !force {
            return Err(Error::Exists(target.to_owned()));
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        fs_err::create_dir_all(&parent).map_err(|source| Error::Io {
            path: parent.clone(),
            source,
        })?;
        let prefix = format!(".{}.partial-", name.to_string_lossy());
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { path, source }
        };
        let lock = new_lock(&parent, &prefix)?;
        remove_stale(&parent, &prefix, lock.path())?;
        let lock_name = lock.path().to_string_lossy().into_owned();
        let dir = PathBuf::from(lock_name.strip_suffix(LOCK_SUFFIX).unwrap_or(&lock_name));
        fs_err::create_dir(&dir).map_err(io(&dir))?;
        Ok(Staging {
            dir,
            target: target.to_owned(),
            force,
            _lock: lock,
            committed: false,
        })
    }

    /// Where to write artifacts now.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Moves the staging directory into place. With `force`, a previous build output at the
    /// target is replaced (it is moved aside first, then removed).
    pub fn commit(mut self) -> Result<PathBuf, Error> {
        let staged = self.dir.clone();
        {
            // tempfile creates the staging directory 0700; the output is an ordinary directory.
            use std::os::unix::fs::PermissionsExt;
            fs_err::set_permissions(&staged, std::fs::Permissions::from_mode(0o755)).map_err(
                |source| Error::Io {
                    path: staged.clone(),
                    source,
                },
            )?;
        }
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { path, source }
        };
        if self.target.exists() {
            if !self.force {
                return Err(Error::Exists(self.target.clone()));
            }
            if !self.target.join("record.json").is_file() {
                return Err(Error::NotAnOutput(self.target.clone()));
            }
            let mut aside = staged.clone().into_os_string();
            aside.push(".old");
            let aside = PathBuf::from(aside);
            fs_err::rename(&self.target, &aside).map_err(io(&self.target))?;
            fs_err::rename(&staged, &self.target).map_err(io(&self.target))?;
            self.committed = true;
            fs_err::remove_dir_all(&aside).map_err(io(&aside))?;
        } else {
            fs_err::rename(&staged, &self.target).map_err(io(&self.target))?;
            self.committed = true;
        }
        Ok(self.target.clone())
    }
}

impl Drop for Staging {
    /// An uncommitted build removes its directory; the lock file goes after it (field drop).
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs_err::remove_dir_all(&self.dir);
        }
    }
}

/// Creates and locks this build's lock file. Blocking: another build's [`held`] probe may hold
/// a shared lock on it for an instant. A lock file another build removed in the instant between
/// its creation and the lock (it looked unheld) is replaced.
fn new_lock(parent: &Path, prefix: &str) -> Result<tempfile::NamedTempFile, Error> {
    use std::os::unix::fs::MetadataExt;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    loop {
        let lock = tempfile::Builder::new()
            .prefix(prefix)
            .suffix(LOCK_SUFFIX)
            .tempfile_in(parent)
            .map_err(io(parent))?;
        rustix::fs::flock(lock.as_file(), rustix::fs::FlockOperation::LockExclusive).map_err(
            |e| Error::Io {
                path: lock.path().to_owned(),
                source: e.into(),
            },
        )?;
        let ours = lock.as_file().metadata().map_err(io(lock.path()))?.ino();
        match fs_err::symlink_metadata(lock.path()) {
            Ok(m) if m.ino() == ours => return Ok(lock),
            _ => continue,
        }
    }
}

/// The lock file beside each staging directory: the directory's name plus this.
const LOCK_SUFFIX: &str = ".lock";

/// Removes `PREFIX*` directories (and `.old` leftovers of a `--force` swap) in `parent` whose
/// lock file is missing or not held by a running build, and unheld lock files. `own` is this
/// build's lock (held, so never removed).
fn remove_stale(parent: &Path, prefix: &str, own: &Path) -> Result<(), Error> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    for entry in fs_err::read_dir(parent).map_err(io(parent))? {
        let entry = entry.map_err(io(parent))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(prefix) {
            continue;
        }
        let path = entry.path();
        if path == own {
            continue;
        }
        let stem = name
            .strip_suffix(LOCK_SUFFIX)
            .or_else(|| name.strip_suffix(".old"))
            .unwrap_or(&name);
        let lock = parent.join(format!("{stem}{LOCK_SUFFIX}"));
        if lock == own || held(&lock) {
            continue;
        }
        let removed = if name.ends_with(LOCK_SUFFIX) {
            fs_err::remove_file(&path)
        } else {
            fs_err::remove_dir_all(&path)
        };
        match removed {
            // Another build may be removing the same leftover.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            r => r.map_err(io(&path))?,
        }
    }
    Ok(())
}

/// Whether a running build holds the lock at `path` (a missing file is not held).
fn held(path: &Path) -> bool {
    let Ok(file) = fs_err::File::open(path) else {
        return false;
    };
    match rustix::fs::flock(
        file.file(),
        rustix::fs::FlockOperation::NonBlockingLockShared,
    ) {
        // Taken: nobody holds it exclusively (closing `file` releases it again).
        Ok(()) => false,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::Staging;

    fn partials(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = fs_err::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".out.partial-"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn stale_partials_go_and_live_ones_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("out");
        // A dead build: its directory and its lock file, which nobody holds.
        fs_err::create_dir(tmp.path().join(".out.partial-dead01")).unwrap();
        fs_err::write(tmp.path().join(".out.partial-dead01/rootfs.img"), b"x").unwrap();
        fs_err::write(tmp.path().join(".out.partial-dead01.lock"), b"").unwrap();
        // A build of an older version (no lock file), and another output's partial.
        fs_err::create_dir(tmp.path().join(".out.partial-nolock")).unwrap();
        fs_err::create_dir(tmp.path().join(".other.partial-dead02")).unwrap();
        let live = Staging::new(&target, false).unwrap();
        let live_name = live
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(
            partials(tmp.path()),
            vec![live_name.clone(), format!("{live_name}.lock")]
        );
        assert!(tmp.path().join(".other.partial-dead02").is_dir());
        // A second build while the first runs leaves the first alone.
        let second = Staging::new(&target, false).unwrap();
        assert!(live.path().is_dir());
        assert_eq!(partials(tmp.path()).len(), 4);
        drop(second);
        live.commit().unwrap();
        assert!(target.is_dir());
        assert_eq!(partials(tmp.path()), Vec::<String>::new());
    }
}
