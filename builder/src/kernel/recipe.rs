//! The build recipe as data: the environment and `make` arguments, the cache key.
//!
//! Pure functions, so tests can check every reproducibility knob without running `make`.
//! [`RECIPE_VERSION`] is part of the cache key: bump it whenever anything here changes what
//! the build produces.

use std::ffi::OsString;
use std::path::Path;

use measurements::Sha256Digest;
use sha2::{Digest, Sha256};

/// Version of this recipe. Changing the environment, the `make` arguments or the extraction
/// changes the bzImage, so it must change the cache key too: bump this number.
pub const RECIPE_VERSION: u32 = 1;

/// `PATH` for every tool the build runs; the caller's environment is not inherited.
pub const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Where the source tree appears in file names the compiler records (`-ffile-prefix-map`).
pub const MAPPED_SOURCE_DIR: &str = "/usr/src/linux";

/// Build user, host and version as `uname -v` and `/proc/version` show them.
pub const BUILD_USER: &str = "enclave";
/// See [`BUILD_USER`].
pub const BUILD_HOST: &str = "enclave-builder";
/// See [`BUILD_USER`].
pub const BUILD_VERSION: &str = "1";

/// The inputs that determine the bzImage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// sha256 of the source package.
    pub source_sha256: Sha256Digest,
    /// The resolved `.config`, byte for byte.
    pub config: Vec<u8>,
    /// `SOURCE_DATE_EPOCH`: the build timestamp the kernel embeds.
    pub epoch: u64,
}

impl Recipe {
    /// The cache key: sha256 over the recipe version, the source digest, the config bytes
    /// (length-prefixed) and the epoch.
    pub fn cache_key(&self) -> Sha256Digest {
        let mut h = Sha256::new();
        h.update(b"enclave-builder kernel recipe\0");
        h.update(RECIPE_VERSION.to_le_bytes());
        h.update(self.source_sha256.as_bytes());
        h.update((self.config.len() as u64).to_le_bytes());
        h.update(&self.config);
        h.update(self.epoch.to_le_bytes());
        Sha256Digest(h.finalize().into())
    }

    /// The whole environment of every `make` run (the caller's is cleared first).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PATH", PATH.to_owned()),
            ("LC_ALL", "C".to_owned()),
            ("TZ", "UTC".to_owned()),
            ("SOURCE_DATE_EPOCH", self.epoch.to_string()),
            ("KBUILD_BUILD_TIMESTAMP", build_timestamp(self.epoch)),
            ("KBUILD_BUILD_USER", BUILD_USER.to_owned()),
            ("KBUILD_BUILD_HOST", BUILD_HOST.to_owned()),
            ("KBUILD_BUILD_VERSION", BUILD_VERSION.to_owned()),
        ]
    }

    /// `make` arguments for `targets` in the source tree `src` (an absolute path).
    ///
    /// `KCFLAGS=-ffile-prefix-map=SRC=/usr/src/linux` keeps the work directory out of every
    /// object (`__FILE__`, debug info). The `--build-id=sha1` note the kernel's Makefile adds
    /// is kept: it is a hash of the linked contents, so it is as reproducible as they are, and
    /// overriding `LDFLAGS_vmlinux` on the command line would also drop x86's `--emit-relocs`.
    pub fn make_args(&self, src: &Path, jobs: usize, targets: &[&str]) -> Vec<OsString> {
        let mut kcflags = OsString::from("KCFLAGS=-ffile-prefix-map=");
        kcflags.push(src.as_os_str());
        kcflags.push("=");
        kcflags.push(MAPPED_SOURCE_DIR);
        let mut args: Vec<OsString> = vec![
            "-C".into(),
            src.as_os_str().to_owned(),
            format!("-j{}", jobs.max(1)).into(),
            "ARCH=x86".into(),
            kcflags,
        ];
        args.extend(targets.iter().map(OsString::from));
        args
    }
}

/// `epoch` formatted as GNU `date -u` prints it in the C locale
/// (`Thu Jan  1 00:00:00 UTC 1970`), the form kbuild itself uses for the build timestamp.
pub fn build_timestamp(epoch: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = epoch / 86_400;
    let secs = epoch % 86_400;
    let (year, month, day) = civil_from_days(days);
    // `days % 7` < 7 and `month` is 1..=12 by construction, so both lookups are in range.
    let weekday = DAYS[(days % 7) as usize];
    let month_name = MONTHS[(month - 1) as usize];
    format!(
        "{weekday} {month_name} {day:>2} {:02}:{:02}:{:02} UTC {year}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}
