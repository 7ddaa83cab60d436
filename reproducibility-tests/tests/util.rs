use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root.
pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The `enclave-builder` binary built beside this test binary (scripts/test.sh builds it).
pub(crate) fn builder_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("enclave-builder");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p enclave-builder` first (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// Generates `manifests/demo-inputs` once per test process and returns the demo manifest.
pub(crate) fn demo_manifest() -> PathBuf {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        reproducibility_tests::demo::generate(
            &repo().join("manifests/demo-inputs"),
            &reproducibility_tests::demo::fixtures_dir(),
            &|_| {},
        )
        .expect("generating the demo inputs");
    });
    repo().join("manifests/demo.toml")
}

/// Conditions a build runs under.
#[derive(Debug, Clone)]
pub(crate) struct Conditions {
    pub(crate) tz: &'static str,
    pub(crate) lc_all: &'static str,
    pub(crate) umask: &'static str,
    pub(crate) tmpdir: PathBuf,
    pub(crate) cwd: PathBuf,
}

/// Runs `enclave-builder ARGS` under `c` (umask set by a shell wrapper).
pub(crate) fn run_builder(c: &Conditions, args: &[&str]) -> Output {
    fs_err::create_dir_all(&c.tmpdir).unwrap();
    fs_err::create_dir_all(&c.cwd).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("umask {}; exec \"$0\" \"$@\"", c.umask))
        .arg(builder_bin())
        .args(args)
        .current_dir(&c.cwd)
        .env("TZ", c.tz)
        .env("LC_ALL", c.lc_all)
        .env("TMPDIR", &c.tmpdir);
    cmd.output().unwrap()
}

/// Runs `enclave-builder ARGS` plainly.
pub(crate) fn builder(args: &[&str]) -> Output {
    Command::new(builder_bin()).args(args).output().unwrap()
}

/// Asserts a command succeeded, printing its output otherwise.
pub(crate) fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs an external tool, asserting success; the tool must be installed (never skipped).
pub(crate) fn tool(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} is not runnable ({e}); install it (.ci/run lists the packages)")
        });
    out
}

/// The demo build, built once per test process into a temporary directory.
pub(crate) fn demo_build() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let manifest = demo_manifest();
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("demo");
        let o = builder(&[
            "build",
            manifest.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]);
        ok(&o, "demo build");
        (tmp, out)
    })
    .1
}
