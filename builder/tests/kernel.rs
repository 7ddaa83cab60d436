//! `builder::kernel`: the recipe (environment, arguments, cache key), the config checks, and
//! the real build of the pinned guest kernel.
//!
//! References: GNU `date` for the build timestamp, `kernel-config/check-fragment.sh` (an
//! independent shell implementation) for the fragment check, and `kernel-config/bzImage.sha256`
//! (recorded from `scripts/build-kernel.sh`, a separate shell implementation of the recipe)
//! for the build.

use std::path::{Path, PathBuf};
use std::process::Command;

use builder::kernel::{self, config, recipe::Recipe, KernelBuild, KernelBuildOptions};
use measurements::Sha256Digest;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
/// The pinned kernel source package, under the fixtures.
const SOURCE_DEB: &str = "kernel-source/linux-source-6.12_6.12.117-1~deb12u1_all.deb";
/// The source package's pin (also in shared/fixtures/SHA256SUMS).
const SOURCE_SHA256: &str = "e849faf31ca3555757f3a8877cb01af92122f744f75d1f3102734651c4e14703";

fn config_dir() -> PathBuf {
    Path::new(ROOT).join("kernel-config")
}

fn read(path: &Path) -> String {
    fs_err::read_to_string(path).unwrap()
}

fn recipe() -> Recipe {
    Recipe {
        source_sha256: SOURCE_SHA256.parse().unwrap(),
        config: b"CONFIG_X=y\n".to_vec(),
        epoch: kernel::DEFAULT_EPOCH,
    }
}

#[test]
fn build_timestamp_matches_gnu_date() {
    for epoch in [
        0u64,
        59,
        86_399,
        86_400,
        951_782_400, // 2000-02-29
        1_234_567_890,
        kernel::DEFAULT_EPOCH,
        4_102_444_800, // 2100-01-01, not a leap year
        4_107_542_399,
    ] {
        let out = Command::new("date")
            .env_clear()
            .env("LC_ALL", "C")
            .env("TZ", "UTC")
            .args(["-u", "-d", &format!("@{epoch}")])
            .output()
            .expect("GNU date");
        assert!(out.status.success());
        let want = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            kernel::recipe::build_timestamp(epoch),
            want.trim_end(),
            "epoch {epoch}"
        );
    }
}

#[test]
fn environment_is_fixed_and_complete() {
    let env = recipe().env();
    let keys: Vec<&str> = env.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        [
            "PATH",
            "LC_ALL",
            "TZ",
            "SOURCE_DATE_EPOCH",
            "KBUILD_BUILD_TIMESTAMP",
            "KBUILD_BUILD_USER",
            "KBUILD_BUILD_HOST",
            "KBUILD_BUILD_VERSION"
        ]
    );
    let get = |k: &str| env.iter().find(|(n, _)| *n == k).unwrap().1.clone();
    assert_eq!(get("LC_ALL"), "C");
    assert_eq!(get("TZ"), "UTC");
    assert_eq!(get("SOURCE_DATE_EPOCH"), "1794660961");
    assert_eq!(
        get("KBUILD_BUILD_TIMESTAMP"),
        "Sat Nov 14 12:56:01 UTC 2026"
    );
    assert_eq!(get("KBUILD_BUILD_USER"), "enclave");
    assert_eq!(get("KBUILD_BUILD_HOST"), "enclave-builder");
    assert_eq!(get("KBUILD_BUILD_VERSION"), "1");
    assert!(
        !get("PATH").contains(".cargo"),
        "no rustc may leak into the config"
    );
}

#[test]
fn make_arguments_map_the_work_directory_away() {
    let args = recipe().make_args(Path::new("/tmp/w/linux"), 3, &["bzImage"]);
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        args,
        [
            "-C",
            "/tmp/w/linux",
            "-j3",
            "ARCH=x86",
            "KCFLAGS=-ffile-prefix-map=/tmp/w/linux=/usr/src/linux",
            "bzImage"
        ]
    );
    let zero = recipe().make_args(Path::new("/s"), 0, &["olddefconfig"]);
    assert_eq!(zero[2], "-j1");
}

#[test]
fn cache_key_changes_with_each_input() {
    let base = recipe();
    assert_eq!(base.cache_key(), recipe().cache_key(), "stable");
    let mut other_source = recipe();
    other_source.source_sha256 = Sha256Digest::of(b"another package");
    let mut other_config = recipe();
    other_config.config = b"CONFIG_X=n\n".to_vec();
    let mut longer_config = recipe();
    longer_config.config.push(b'\n');
    let mut other_epoch = recipe();
    other_epoch.epoch += 1;
    let keys = [
        base.cache_key(),
        other_source.cache_key(),
        other_config.cache_key(),
        longer_config.cache_key(),
        other_epoch.cache_key(),
    ];
    for (i, a) in keys.iter().enumerate() {
        for b in &keys[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

/// Runs the shell checker; returns (success, stderr).
fn shell_check(fragment: &Path, config_text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config");
    fs_err::write(&cfg, config_text).unwrap();
    let out = Command::new(config_dir().join("check-fragment.sh"))
        .arg(fragment)
        .arg(&cfg)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn checked_in_config_resolves_every_fragment_option() {
    let fragment = config_dir().join("enclave.config");
    let resolved = read(&config_dir().join(kernel::CONFIG_FILE));
    assert_eq!(config::check_fragment(&read(&fragment), &resolved), Ok(()));
    assert_eq!(shell_check(&fragment, &resolved), (true, String::new()));
    // Spot checks straight from the text, independent of the parser.
    for line in [
        "CONFIG_SMP=y",
        "CONFIG_SEV_GUEST=y",
        "CONFIG_TDX_GUEST_DRIVER=y",
        "CONFIG_TSM_REPORTS=y",
        "CONFIG_DM_VERITY=y",
        "CONFIG_DM_INIT=y",
        "CONFIG_EROFS_FS=y",
        "CONFIG_KERNEL_GZIP=y",
        "# CONFIG_MODULES is not set",
        "CONFIG_LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY=y",
    ] {
        assert!(resolved.lines().any(|l| l == line), "{line}");
    }
}

#[test]
fn fragment_check_catches_unresolved_options() {
    let fragment = config_dir().join("enclave.config");
    let good = read(&config_dir().join(kernel::CONFIG_FILE));
    let bad = good
        .replace("CONFIG_DM_VERITY=y\n", "# CONFIG_DM_VERITY is not set\n")
        .replace("CONFIG_EROFS_FS=y\n", "")
        .replace("# CONFIG_KEXEC is not set\n", "CONFIG_KEXEC=y\n")
        .replace("CONFIG_NR_CPUS=64\n", "CONFIG_NR_CPUS=8\n");
    assert_ne!(bad, good);
    let errs = config::check_fragment(&read(&fragment), &bad).unwrap_err();
    let got: Vec<(&str, &str, Option<&str>)> = errs
        .iter()
        .map(|u| {
            (
                u.option.as_str(),
                u.requested.as_str(),
                u.resolved.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("CONFIG_NR_CPUS", "64", Some("8")),
            ("CONFIG_DM_VERITY", "y", Some("n")),
            ("CONFIG_EROFS_FS", "y", None),
            ("CONFIG_KEXEC", "n", Some("y")),
        ]
    );
    assert!(errs[0]
        .to_string()
        .contains("CONFIG_NR_CPUS requested 64, resolved to 8"));
    // The shell checker agrees.
    let (ok, stderr) = shell_check(&fragment, &bad);
    assert!(!ok);
    for name in [
        "CONFIG_NR_CPUS",
        "CONFIG_DM_VERITY",
        "CONFIG_EROFS_FS",
        "CONFIG_KEXEC",
    ] {
        assert!(
            stderr.contains(&format!("'{name}")) || stderr.contains(&format!("'# {name}")),
            "{name}: {stderr}"
        );
    }
    assert_eq!(stderr.lines().count(), 4, "{stderr}");
}

#[test]
fn config_diff_names_each_changed_option() {
    let a = "# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x\"\nCONFIG_D=1\n";
    let b = "CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=\"z\"\nCONFIG_E=y\n";
    let d = config::diff(a, b);
    let got: Vec<String> = d.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "CONFIG_B: n -> y",
            "CONFIG_C: \"x\" -> \"z\"",
            "CONFIG_D: 1 -> (absent)",
            "CONFIG_E: (absent) -> y"
        ]
    );
    assert!(config::diff(a, a).is_empty());
}

#[test]
fn wrong_source_digest_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let deb = dir.path().join("fake.deb");
    fs_err::write(&deb, b"not a package").unwrap();
    let args = KernelBuildOptions {
        source: deb.clone(),
        source_sha256: SOURCE_SHA256.parse().unwrap(),
        config_dir: config_dir(),
        out: dir.path().join("bzImage"),
        cache: dir.path().join("cache"),
        jobs: None,
        epoch: kernel::DEFAULT_EPOCH,
    };
    let err = kernel::build(&args, &|_| {}).unwrap_err();
    match &err {
        kernel::Error::SourceDigest {
            path,
            expected,
            actual,
        } => {
            assert_eq!(path, &deb);
            assert_eq!(expected.to_hex(), SOURCE_SHA256);
            assert_eq!(*actual, Sha256Digest::of(b"not a package"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!dir.path().join("cache").exists());
    assert!(!dir.path().join("bzImage").exists());
}

/// The pinned digest: first field of kernel-config/bzImage.sha256 (sha256sum format).
fn pinned_bzimage_sha256() -> Sha256Digest {
    let text = read(&config_dir().join("bzImage.sha256"));
    let first = text.lines().find(|l| !l.starts_with('#')).unwrap();
    first.split_whitespace().next().unwrap().parse().unwrap()
}

fn args(cache: &Path, out: &Path) -> KernelBuildOptions {
    KernelBuildOptions {
        source: crate::util::fixture(SOURCE_DEB),
        source_sha256: SOURCE_SHA256.parse().unwrap(),
        config_dir: config_dir(),
        out: out.to_owned(),
        cache: cache.to_owned(),
        jobs: None,
        epoch: kernel::DEFAULT_EPOCH,
    }
}

/// Builds the real kernel (about 10 minutes on 2 cores, once per `target/kernel-cache`) and
/// checks it against the pinned digest; a second call must come from the cache.
#[test]
fn pinned_kernel_builds_to_the_pinned_sha256() {
    let cache = Path::new(ROOT).join("target/kernel-cache");
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("bzImage");
    let first = kernel::run_build(&args(&cache, &out), &|_| {}).unwrap();
    assert_eq!(first.sha256, pinned_bzimage_sha256());
    assert_eq!(Sha256Digest::of(&fs_err::read(&out).unwrap()), first.sha256);
    let again = kernel::run_build(&args(&cache, &out), &|_| {}).unwrap();
    assert!(again.cached);
    assert_eq!(
        again,
        KernelBuild {
            cached: true,
            ..first
        }
    );
}

/// Opt-in (`cargo test -p enclave-builder --test tests -- --ignored kernel::`): two full
/// builds in two fresh directories must give the same bzImage (about 20 minutes).
#[test]
#[ignore = "two full kernel builds; run by hand"]
fn two_fresh_builds_are_identical() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::Builder::new()
        .prefix("a-different-path-")
        .tempdir()
        .unwrap();
    let one = kernel::run_build(&args(a.path(), &a.path().join("out")), &|_| {}).unwrap();
    let two = kernel::run_build(&args(b.path(), &b.path().join("out")), &|_| {}).unwrap();
    assert!(!one.cached && !two.cached);
    assert_eq!(one.sha256, two.sha256);
    assert_eq!(one.sha256, pinned_bzimage_sha256());
}

#[test]
fn command_line_parses_with_defaults() {
    use clap::Parser;
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: builder::cli::KernelBuildArgs,
    }
    let w = Wrapper::try_parse_from([
        "x",
        "--source",
        "s.deb",
        "--source-sha256",
        SOURCE_SHA256,
        "--config-dir",
        "kernel-config",
        "--out",
        "bzImage",
    ])
    .unwrap();
    assert_eq!(w.args.cache, Path::new("target/kernel-cache"));
    assert_eq!(w.args.epoch, 1_794_660_961);
    assert_eq!(w.args.jobs, None);
    assert_eq!(w.args.source_sha256.to_hex(), SOURCE_SHA256);
    let bad = Wrapper::try_parse_from([
        "x",
        "--source",
        "s.deb",
        "--source-sha256",
        "abc",
        "--config-dir",
        "d",
        "--out",
        "o",
    ]);
    assert!(bad.is_err());
}

/// A config that `make olddefconfig` rewrites (here: it claims another gcc) is refused, naming
/// the option, before any compilation (about a minute: extraction and kconfig only).
#[test]
fn config_changed_by_olddefconfig_is_refused_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_dir = dir.path().join("kernel-config");
    fs_err::create_dir(&cfg_dir).unwrap();
    let good = read(&config_dir().join(kernel::CONFIG_FILE));
    assert!(good.contains("\nCONFIG_GCC_VERSION=120200\n"));
    let stale = good.replace(
        "\nCONFIG_GCC_VERSION=120200\n",
        "\nCONFIG_GCC_VERSION=110000\n",
    );
    fs_err::write(cfg_dir.join(kernel::CONFIG_FILE), stale).unwrap();
    let mut a = args(&dir.path().join("cache"), &dir.path().join("bzImage"));
    a.config_dir = cfg_dir.clone();
    let err = kernel::build(&a, &|_| {}).unwrap_err();
    match &err {
        kernel::Error::ConfigChanged { path, diffs } => {
            assert_eq!(path, &cfg_dir.join(kernel::CONFIG_FILE));
            let got: Vec<String> = diffs.iter().map(ToString::to_string).collect();
            assert_eq!(got, ["CONFIG_GCC_VERSION: 110000 -> 120200"]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("CONFIG_GCC_VERSION"));
    assert!(!dir.path().join("bzImage").exists());
    // The work tree is gone; only the (empty) cache directory is left.
    let left: Vec<_> = fs_err::read_dir(dir.path().join("cache"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
