use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use reproducibility_tests::Layer;

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

/// A new temporary project directory holding `base.tar`: a root layer with `/etc/hostname`
/// (`hostname`), then whatever `more` adds.
pub(crate) fn project_dir(hostname: &[u8], more: impl FnOnce(&mut Layer)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut layer = Layer::new();
    layer
        .dir("etc", 0o755)
        .file("etc/hostname", 0o644, hostname);
    more(&mut layer);
    fs_err::write(dir.path().join("base.tar"), layer.finish()).unwrap();
    dir
}

/// The start of a test manifest, up to its `[boot]` table: `[image]` named `name` (version 1,
/// epoch 2025-01-01) with one root layer, `tar` pinned to `sha256`.
pub(crate) fn manifest_head(name: &str, tar: &str, sha256: &str) -> String {
    format!(
        r#"schema = 1
[image]
name = "{name}"
version = "1"
source_date_epoch = 1735689600

[[rootfs.layers]]
tar = "{tar}"
sha256 = "{sha256}"
"#
    )
}

/// `enclave-builder keygen --out KEY --algorithm ALGORITHM --json` through `run` (which runs
/// the builder with these arguments), asserting success; returns `key` and the printed
/// fingerprint.
pub(crate) fn keygen(
    run: impl Fn(&[&str]) -> Output,
    key: PathBuf,
    algorithm: &str,
) -> (PathBuf, String) {
    let o = run(&[
        "keygen",
        "--out",
        key.to_str().unwrap(),
        "--algorithm",
        algorithm,
        "--json",
    ]);
    ok(&o, "enclave-builder keygen");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    (key, v["fingerprint"].as_str().unwrap().to_owned())
}

/// Writes `text` to `dir/name`; returns the path.
pub(crate) fn write_in(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs_err::write(&path, text).unwrap();
    path
}

/// Builds `manifest` into `out` (with [`build_quiet`]), asserting success; returns `out`.
pub(crate) fn build_ok(manifest: &Path, out: PathBuf) -> PathBuf {
    ok(&build_quiet(manifest, &out), "enclave-builder build");
    out
}

/// `enclave-builder build MANIFEST --out OUT --quiet`, run plainly (like [`builder`]).
pub(crate) fn build_quiet(manifest: &Path, out: &Path) -> Output {
    builder(&build_quiet_args(manifest, out))
}

/// The arguments of [`build_quiet`].
pub(crate) fn build_quiet_args<'a>(manifest: &'a Path, out: &'a Path) -> [&'a str; 5] {
    let (manifest, out) = (manifest.to_str().unwrap(), out.to_str().unwrap());
    ["build", manifest, "--out", out, "--quiet"]
}

/// Checks a build was refused: exit code 3, neither `out` nor a staging (`partial`)
/// directory left in `dir`, and stderr naming every one of `needles`; returns stderr.
pub(crate) fn assert_refused(o: &Output, out: &Path, dir: &Path, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        o.status.code(),
        Some(3),
        "expected exit code 3 (input refused), got {:?}; stderr:\n{err}",
        o.status.code()
    );
    assert!(!out.exists(), "a refused build left {}", out.display());
    let leftovers: Vec<_> = fs_err::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "a refused build left {leftovers:?}");
    for n in needles {
        assert!(err.contains(n), "stderr does not mention {n:?}:\n{err}");
    }
    err
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

/// `sev-snp-measure --mode snp` (the reference) over a build output's `vmlinuz`, `initrd.img`
/// and `cmdline`, for one SNP profile's firmware, vCPU count, vCPU type and guest features:
/// its launch digest, hex.
pub(crate) fn sev_snp_measure(
    out: &Path,
    firmware: &Path,
    vcpus: u64,
    vcpu_type: &str,
    guest_features: u64,
) -> String {
    let cmdline = fs_err::read_to_string(out.join("cmdline")).unwrap();
    let o = tool(
        "sev-snp-measure",
        &[
            "--mode",
            "snp",
            "--ovmf",
            firmware.to_str().unwrap(),
            "--vcpus",
            &vcpus.to_string(),
            "--vcpu-type",
            vcpu_type,
            "--guest-features",
            &format!("{guest_features:#x}"),
            "--kernel",
            out.join("vmlinuz").to_str().unwrap(),
            "--initrd",
            out.join("initrd.img").to_str().unwrap(),
            "--append",
            &cmdline,
        ],
    );
    ok(&o, "sev-snp-measure");
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

/// Fixture files as (path under `../shared/fixtures`, sha256), pins from
/// fixtures/SHA256SUMS: boot firmware, SEV-SNP (AmdSev) and TDX firmware, systemd's EFI stub.
const FIXTURES: [(&str, &str); 4] = [
    (
        "firmware/OVMF-2025.02.fd",
        "14954040cc754ade0c625ac3470ea46d4c14318b5b1396de4ef77090203d76db",
    ),
    (
        "firmware/OVMF.amdsev-2026.08.fd",
        "3e4fd0b3fe3b2dbe481c3d9e99418a034174f26cbe1f55aa212b0f18c12d2d6f",
    ),
    (
        "firmware/OVMF.inteltdx.ms-2026.08.fd",
        "a265075b4147a096109e501e76196df1ec8a18659c26f7401492c597ec88f312",
    ),
    (
        "uki/linuxx64.efi.stub-257.13",
        "9c623743834bb904a3cb941092cffc958c31230263ce896d332a75e9ec48aa85",
    ),
];
/// The boot firmware.
pub(crate) const OVMF: (&str, &str) = FIXTURES[0];
/// The SEV-SNP firmware (OVMF AmdSev build).
pub(crate) const OVMF_SNP: (&str, &str) = FIXTURES[1];
/// The TDX firmware.
pub(crate) const OVMF_TDX: (&str, &str) = FIXTURES[2];
/// systemd's EFI stub.
pub(crate) const EFI_STUB: (&str, &str) = FIXTURES[3];

/// A copy of `image`, written to `dir`, with the byte at `offset` XORed with `mask`.
pub(crate) fn flipped_copy(image: &Path, offset: u64, mask: u8, dir: &Path) -> PathBuf {
    let bad = dir.join("bad.img");
    let mut bytes = fs_err::read(image).unwrap();
    bytes[usize::try_from(offset).unwrap()] ^= mask;
    fs_err::write(&bad, &bytes).unwrap();
    bad
}

/// The files a demo build writes to its output directory, sorted.
pub(crate) const DEMO_OUTPUT_FILES: [&str; 9] = [
    "OVMF.fd",
    "cmdline",
    "disk-model.img",
    "initrd.img",
    "record.json",
    "rootfs.img",
    "run-qemu.sh",
    "uki-qemu-swtpm.efi",
    "vmlinuz",
];

/// The demo build, built once per test process into a temporary directory.
pub(crate) fn demo_build() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let manifest = demo_manifest();
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("demo");
        let o = build_quiet(&manifest, &out);
        ok(&o, "demo build");
        (tmp, out)
    })
    .1
}

/// A Rust component the builder compiled for the demo image (`target/enclave-components`),
/// checked to be the very binary `record.json` in `demo` lists.
pub(crate) fn demo_component(demo: &Path, bin: &str) -> PathBuf {
    let path = repo()
        .join("target/enclave-components/x86_64-unknown-linux-gnu/release")
        .join(bin);
    let digest = measurements::Sha256Digest::of(&fs_err::read(&path).unwrap()).to_string();
    let record: serde_json::Value =
        serde_json::from_slice(&fs_err::read(demo.join("record.json")).unwrap()).unwrap();
    let recorded = rust_component(&record, bin);
    assert_eq!(
        recorded["sha256"],
        digest.as_str(),
        "{} is not the binary in the demo image",
        path.display()
    );
    path
}

/// The record's `rust-component` input for the binary `bin`.
pub(crate) fn rust_component<'r>(
    record: &'r serde_json::Value,
    bin: &str,
) -> &'r serde_json::Value {
    record["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "rust-component" && i["bin"] == bin)
        .unwrap_or_else(|| panic!("the record lists no {bin} component"))
}

/// `fsck.erofs --extract=DIR IMAGE` (checks the image, then writes its tree to `dir`).
pub(crate) fn fsck_extract(image: &Path, dir: &Path) {
    ok(
        &tool(
            "fsck.erofs",
            &[
                &format!("--extract={}", dir.display()),
                image.to_str().unwrap(),
            ],
        ),
        "fsck.erofs --extract",
    );
}

/// `fsck.erofs --extract=DIR --preserve IMAGE`: as [`fsck_extract`], keeping owners and
/// modes.
pub(crate) fn fsck_extract_preserving(image: &Path, dir: &Path) {
    let arg = format!("--extract={}", dir.display());
    let o = tool("fsck.erofs", &[&arg, "--preserve", image.to_str().unwrap()]);
    ok(
        &o,
        &format!("fsck.erofs --extract --preserve {}", image.display()),
    );
}

/// One HTTPS request to the demo server at `addr` (attested-server's client; the server's
/// key is taken as presented: these tests check the workload, attested-server's tests the
/// binding); returns the status and body.
pub(crate) fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, Vec<u8>)> {
    use attested_server::client;
    let req = match (method, body) {
        ("GET", None) => client::get(path),
        ("POST", Some(b)) => client::post_json(path, b.as_bytes().to_vec()),
        _ => panic!("http(): GET without a body or POST with one, not {method}"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (_, reply) = rt
        .block_on(client::request(addr, None, req))
        .map_err(std::io::Error::other)?;
    Ok((reply.status, reply.body))
}

/// `POST /v1/embeddings` with `inputs` to the server at `addr`; returns the vectors and
/// `usage.prompt_tokens`.
pub(crate) fn embeddings(addr: &str, inputs: &[&str]) -> (Vec<Vec<f64>>, u64) {
    let body = serde_json::json!({ "input": inputs }).to_string();
    let (status, out) = http(addr, "POST", "/v1/embeddings", Some(&body)).unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let vectors = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect();
    (vectors, v["usage"]["prompt_tokens"].as_u64().unwrap())
}

/// `demo-server` run on the host, killed when dropped.
pub(crate) struct HostServer {
    child: std::process::Child,
    /// Where it listens (`127.0.0.1:PORT`).
    pub(crate) addr: String,
}

impl HostServer {
    /// Starts `bin --model-dir DIR --listen 127.0.0.1:0` and waits for its ready line.
    pub(crate) fn start(bin: &Path, model: &Path) -> HostServer {
        use std::io::BufRead;
        let mut child = Command::new(bin)
            .arg("--model-dir")
            .arg(model)
            .args(["--listen", "127.0.0.1:0"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut line = String::new();
        std::io::BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("demo-server: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from demo-server: {line:?}"))
            .to_owned();
        HostServer { child, addr }
    }
}

impl Drop for HostServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A listing of a tree for comparison: one line per path with type, permissions, owner,
/// size and content digest / link target / device, plus the hard-link group of each file.
/// `full_modes = false` compares only the rwx bits: fsck.erofs 1.5 `--extract` chmods before it
/// chowns, which clears setuid/setgid (it does so for mkfs.erofs's own images too); the kernel
/// mount test compares the full modes.
pub(crate) fn tree_listing(root: &Path, full: bool) -> BTreeMap<String, String> {
    let with_hardlinks = full;
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs_err::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let md = fs_err::symlink_metadata(&path).unwrap();
            let ft = md.file_type();
            let what = if ft.is_dir() {
                stack.push(path.clone());
                "dir".to_owned()
            } else if ft.is_symlink() {
                format!("symlink -> {}", fs_err::read_link(&path).unwrap().display())
            } else if ft.is_file() {
                let data = fs_err::read(&path).unwrap();
                inodes
                    .entry((md.dev(), md.ino()))
                    .or_default()
                    .push(rel.clone());
                format!(
                    "file {} {}",
                    data.len(),
                    measurements::Sha256Digest::of(&data)
                )
            } else if ft.is_char_device() {
                format!("char {:#x}", md.rdev())
            } else if ft.is_block_device() {
                format!("block {:#x}", md.rdev())
            } else if ft.is_fifo() {
                "fifo".to_owned()
            } else {
                "socket".to_owned()
            };
            let perm = if ft.is_symlink() {
                0
            } else {
                md.mode() & if full { 0o7777 } else { 0o777 }
            };
            out.insert(
                rel,
                format!("{what} mode={perm:o} owner={}:{}", md.uid(), md.gid()),
            );
        }
    }
    if with_hardlinks {
        for group in inodes.values().filter(|g| g.len() > 1) {
            let mut g = group.clone();
            g.sort();
            out.insert(format!("hardlink-group {}", g[0]), g.join(" = "));
        }
    }
    out
}

pub(crate) fn listing_diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> String {
    let mut s = String::new();
    for k in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
        if a.get(k) != b.get(k) {
            s += &format!(
                "{k}:\n  ours:      {:?}\n  reference: {:?}\n",
                a.get(k),
                b.get(k)
            );
        }
    }
    s
}

/// One section of a `release diff --json` report (`inputs`, `artifacts`, ...) as
/// `name → status` (`changed`, `unchanged`, `added`, `removed`).
pub(crate) fn diff_statuses(report: &serde_json::Value, section: &str) -> BTreeMap<String, String> {
    report[section]
        .as_array()
        .unwrap_or_else(|| panic!("no {section} array in {report}"))
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_owned(),
                i["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// An EFI system partition in `dir` (`esp.img`, a whole-disk FAT file system made with
/// mtools, no root) holding `uki` as `\EFI\BOOT\BOOTX64.EFI`, the firmware's default.
pub(crate) fn esp_with(dir: &Path, uki: &Path) -> PathBuf {
    let esp = dir.join("esp.img");
    let esp_s = esp.to_str().unwrap();
    ok(
        &tool(
            "mformat",
            &["-i", esp_s, "-C", "-T", "131072", "-v", "ESP", "::"],
        ),
        "mformat",
    );
    ok(&tool("mmd", &["-i", esp_s, "::/EFI", "::/EFI/BOOT"]), "mmd");
    ok(
        &tool(
            "mcopy",
            &[
                "-i",
                esp_s,
                uki.to_str().unwrap(),
                "::/EFI/BOOT/BOOTX64.EFI",
            ],
        ),
        "mcopy",
    );
    esp
}

/// A swtpm (TPM 2.0) with its state in `state`, serving one QEMU over a unix socket; killed
/// when dropped.
pub(crate) struct Swtpm {
    child: std::process::Child,
    sock: PathBuf,
}

impl Swtpm {
    /// Starts swtpm for QEMU's `-tpmdev emulator` (the control channel carries the TPM
    /// commands too); returns once its socket exists.
    pub(crate) fn for_qemu(state: &Path, sock: &Path) -> Swtpm {
        fs_err::create_dir_all(state).unwrap();
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", state.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", sock.display()))
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("swtpm (Debian package swtpm) must be installed");
        let started = std::time::Instant::now();
        while !sock.exists() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "swtpm did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Swtpm {
            child,
            sock: sock.to_owned(),
        }
    }

    /// QEMU's arguments for this TPM as a TIS device.
    pub(crate) fn qemu_args(&self) -> Vec<String> {
        [
            "-chardev".to_owned(),
            format!("socket,id=chrtpm,path={}", self.sock.display()),
            "-tpmdev".to_owned(),
            "emulator,id=tpm0,chardev=chrtpm".to_owned(),
            "-device".to_owned(),
            "tpm-tis,tpmdev=tpm0".to_owned(),
        ]
        .into()
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback TCP port that was free a moment ago (bound, then released), for a server a test
/// starts (QEMU's forwarded port, a registry).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child whose output is kept in a file: a QEMU guest's serial console (`-nographic`).
pub(crate) trait ConsoleLog {
    /// Sends stdout and stderr to a new file at `path` (QEMU's own messages land beside the
    /// guest's), with stdin from /dev/null.
    fn console_log(&mut self, path: &Path) -> &mut Self;
}

impl ConsoleLog for Command {
    fn console_log(&mut self, path: &Path) -> &mut Self {
        let log = fs_err::File::create(path).unwrap();
        self.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap().into_parts().0)
            .stderr(log.into_parts().0)
    }
}

/// What a [`ConsoleLog`] file holds so far, as text (lossy UTF-8), without the serial
/// console's carriage returns.
pub(crate) fn console_text(path: &Path) -> String {
    String::from_utf8_lossy(&fs_err::read(path).unwrap()).replace('\r', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_console_log_keeps_stdout_and_stderr_without_carriage_returns() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let status = Command::new("sh")
            .args(["-c", "printf 'out\\r\\n'; printf 'err\\n' >&2; cat"])
            .console_log(&log)
            .status()
            .unwrap();
        assert!(status.success());
        // stdin is /dev/null: `cat` adds nothing and returns.
        assert_eq!(console_text(&log), "out\nerr\n");
    }

    #[test]
    fn a_free_port_can_be_bound() {
        let port = free_port();
        assert_ne!(port, 0);
        drop(std::net::TcpListener::bind(("127.0.0.1", port)).unwrap());
    }
}
