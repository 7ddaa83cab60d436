//! The output directory: built in a staging directory beside it, renamed into place whole.
//!
//! A failed or interrupted build never leaves a directory at the requested path that looks
//! finished: until [`Staging::commit`] the artifacts live in `.<name>.partial-XXXX` next to it
//! (removed on error; a killed process leaves only that hidden, clearly partial directory).

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
#[derive(Debug)]
pub struct Staging {
    dir: tempfile::TempDir,
    target: PathBuf,
    force: bool,
}

impl Staging {
    /// Creates the staging directory beside `target` (same file system, so the final rename is
    /// atomic). Fails early if `target` exists and `force` is false.
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
        let dir = tempfile::Builder::new()
            .prefix(&format!(".{}.partial-", name.to_string_lossy()))
            .tempdir_in(&parent)
            .map_err(|source| Error::Io {
                path: parent.clone(),
                source,
            })?;
        Ok(Staging {
            dir,
            target: target.to_owned(),
            force,
        })
    }

    /// Where to write artifacts now.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Moves the staging directory into place. With `force`, a previous build output at the
    /// target is replaced (it is moved aside first, then removed).
    pub fn commit(self) -> Result<PathBuf, Error> {
        let staged = self.dir.keep();
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
                let _ = fs_err::remove_dir_all(&staged);
                return Err(Error::Exists(self.target));
            }
            if !self.target.join("record.json").is_file() {
                let _ = fs_err::remove_dir_all(&staged);
                return Err(Error::NotAnOutput(self.target));
            }
            let mut aside = staged.clone().into_os_string();
            aside.push(".old");
            let aside = PathBuf::from(aside);
            fs_err::rename(&self.target, &aside).map_err(io(&self.target))?;
            fs_err::rename(&staged, &self.target).map_err(io(&self.target))?;
            fs_err::remove_dir_all(&aside).map_err(io(&aside))?;
        } else {
            fs_err::rename(&staged, &self.target).map_err(io(&self.target))?;
        }
        Ok(self.target)
    }
}
