//! The conditions the two builds of `check` run under: build A under a plain baseline, build
//! B with every enabled variation changed.

use std::fmt;
use std::path::Path;
use std::process::Command;
use std::str::FromStr;

/// One deliberately varied condition. Each is on by default and can be named in
/// `--vary`/`--no-vary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Variation {
    /// Build B runs under `faketime -f +3y` (when `faketime` is installed).
    Clock,
    /// `TZ`: `UTC` vs `Pacific/Chatham` (UTC+12:45/+13:45).
    Tz,
    /// `LC_ALL`: `C` vs `C.UTF-8`.
    Locale,
    /// umask `022` vs `077`.
    Umask,
    /// Different working and output directory paths (and depths).
    Path,
    /// `TMPDIR`: different directories.
    Tmpdir,
    /// `HOME`: different directories.
    Home,
    /// `RAYON_NUM_THREADS`: 1 vs at least 4 (the verity hasher is parallel).
    Threads,
    /// Directory enumeration order of local inputs. The builder enumerates no directory (every
    /// input is named by the manifest or by an OCI `index.json`), so this changes nothing; it
    /// is kept so the list of variations is stable if that ever changes.
    Order,
}

/// Every variation, in report order.
pub const ALL: [Variation; 9] = [
    Variation::Clock,
    Variation::Tz,
    Variation::Locale,
    Variation::Umask,
    Variation::Path,
    Variation::Tmpdir,
    Variation::Home,
    Variation::Threads,
    Variation::Order,
];

/// An unknown variation name.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown variation {0:?}; known: clock, tz, locale, umask, path, tmpdir, home, threads, order"
)]
pub struct UnknownVariation(pub String);

impl Variation {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Variation::Clock => "clock",
            Variation::Tz => "tz",
            Variation::Locale => "locale",
            Variation::Umask => "umask",
            Variation::Path => "path",
            Variation::Tmpdir => "tmpdir",
            Variation::Home => "home",
            Variation::Threads => "threads",
            Variation::Order => "order",
        }
    }
}

impl fmt::Display for Variation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Variation {
    type Err = UnknownVariation;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL.into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| UnknownVariation(s.to_owned()))
    }
}

/// The conditions of one build.
#[derive(Debug, Clone)]
pub(crate) struct Side {
    pub(crate) label: &'static str,
    /// Relative to the check's work directory.
    pub(crate) cwd: String,
    pub(crate) out: String,
    pub(crate) tmpdir: String,
    pub(crate) home: String,
    pub(crate) tz: &'static str,
    pub(crate) lc_all: &'static str,
    pub(crate) umask: &'static str,
    pub(crate) threads: String,
    pub(crate) faketime: Option<&'static str>,
}

/// Build A's conditions.
pub(crate) fn baseline() -> Side {
    Side {
        label: "A",
        cwd: "a".into(),
        out: "a/out".into(),
        tmpdir: "a/tmp".into(),
        home: "a/home".into(),
        tz: "UTC",
        lc_all: "C",
        umask: "022",
        threads: "1".into(),
        faketime: None,
    }
}

/// Build B's conditions: the baseline with each enabled variation changed.
pub(crate) fn varied(enabled: &[Variation], faketime: bool) -> Side {
    let mut s = baseline();
    s.label = "B";
    let on = |v| enabled.contains(&v);
    if on(Variation::Path) {
        s.cwd = "b/elsewhere/cwd".into();
        s.out = "b/a much/longer path/output".into();
    } else {
        s.cwd = "b".into();
        s.out = "b/out".into();
    }
    s.tmpdir = if on(Variation::Tmpdir) {
        "b/other tmp".into()
    } else {
        "a/tmp".into()
    };
    s.home = if on(Variation::Home) {
        "b/other home".into()
    } else {
        "a/home".into()
    };
    if on(Variation::Tz) {
        s.tz = "Pacific/Chatham";
    }
    if on(Variation::Locale) {
        s.lc_all = "C.UTF-8";
    }
    if on(Variation::Umask) {
        s.umask = "077";
    }
    if on(Variation::Threads) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        s.threads = cores.max(4).to_string();
    }
    if on(Variation::Clock) && faketime {
        s.faketime = Some("+3y");
    }
    s
}

impl Side {
    /// The command that builds `manifest` under these conditions, from the work dir `work`.
    pub(crate) fn command(&self, exe: &Path, manifest: &Path, work: &Path) -> Command {
        let mut cmd = match self.faketime {
            Some(offset) => {
                let mut c = Command::new("faketime");
                c.arg("-f").arg(offset).arg("sh");
                c
            }
            None => Command::new("sh"),
        };
        cmd.arg("-c")
            .arg(format!("umask {}; exec \"$0\" \"$@\"", self.umask))
            .arg(exe)
            .arg("build")
            .arg(manifest)
            .arg("--out")
            .arg(work.join(&self.out))
            .arg("--quiet")
            .current_dir(work.join(&self.cwd))
            .env("TZ", self.tz)
            .env("LC_ALL", self.lc_all)
            .env("TMPDIR", work.join(&self.tmpdir))
            .env("HOME", work.join(&self.home))
            .env("RAYON_NUM_THREADS", &self.threads)
            .envs(crate::plan::toolchain_env());
        cmd
    }

    /// One line describing the conditions (no absolute paths).
    pub(crate) fn describe(&self) -> String {
        format!(
            "build {}: clock {}, TZ={}, LC_ALL={}, umask {}, RAYON_NUM_THREADS={}, cwd {}/, out {}/, TMPDIR {}/, HOME {}/",
            self.label,
            self.faketime.map_or("real".to_owned(), |o| format!("faketime {o}")),
            self.tz,
            self.lc_all,
            self.umask,
            self.threads,
            self.cwd,
            self.out,
            self.tmpdir,
            self.home
        )
    }
}

/// Whether `faketime` can be run.
pub(crate) fn faketime_available() -> bool {
    Command::new("faketime")
        .args(["-f", "+0", "true"])
        .output()
        .is_ok_and(|o| o.status.success())
}
