//! `measure snp` checked against the reference tool, sev-snp-measure 0.0.13, run for real on
//! the same arguments: every case's argv is given verbatim to both tools.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use builder::cli::MeasureCommand;
use builder::measure::run;
use clap::Parser;

const AMDSEV: &str = "OVMF.amdsev-2026.08.fd";
const OTHER_FIRMWARE: [&str; 3] = [
    "OVMF-2022.11.fd",
    "OVMF-2025.02.fd",
    "OVMF.inteltdx.ms-2026.08.fd",
];
const VCPU_TYPES: [&str; 5] = [
    "EPYC",
    "EPYC-Rome",
    "EPYC-Milan",
    "EPYC-Genoa",
    "EPYC-Turin",
];
const CMDLINE: &str = "console=ttyS0 root=/dev/vda1 ro";

/// A stand-in for the top-level CLI: `<bin> snp ARGS...`.
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: MeasureCommand,
}

/// Runs our `measure snp` on `args`; `Err` holds the parse or run error.
fn ours(args: &[String]) -> Result<String, String> {
    let argv = ["enclave-builder", "snp"]
        .into_iter()
        .map(String::from)
        .chain(args.iter().cloned());
    let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    run(&cli.cmd.into(), &mut out).map_err(|e| format!("{e:#}"))?;
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// One result of the reference tool.
#[derive(Debug, serde::Deserialize)]
struct RefResult {
    rc: i32,
    out: String,
    err: String,
}

/// Runs sev-snp-measure's own command-line entry point (`sevsnpmeasure.cli:main`, what the
/// `sev-snp-measure` console script calls) once per case, in one Python process so the
/// matrix stays fast. Fails loudly if the tool is missing or is not version 0.0.13.
fn reference(cases: &[Vec<String>]) -> Vec<RefResult> {
    const DRIVER: &str = r#"
import contextlib, io, json, sys
try:
    from sevsnpmeasure import cli
except ImportError as e:
    sys.exit(f"sev-snp-measure is not installed (pip install sev-snp-measure==0.0.13): {e}")
if cli.VERSION != "0.0.13":
    sys.exit(f"expected sev-snp-measure 0.0.13, found {cli.VERSION}")
results = []
for argv in json.load(sys.stdin):
    out, err = io.StringIO(), io.StringIO()
    sys.argv = ["sev-snp-measure"] + argv
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main()
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except Exception as e:
            rc, _ = 1, err.write(f"{type(e).__name__}: {e}")
    results.append({"rc": rc, "out": out.getvalue(), "err": err.getvalue()})
json.dump(results, sys.stdout)
"#;
    let mut child = Command::new("python3")
        .args(["-c", DRIVER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is required to run the sev-snp-measure reference");
    let input = serde_json::to_vec(cases).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the sev-snp-measure reference driver failed (is sev-snp-measure 0.0.13 installed?): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<RefResult> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(results.len(), cases.len());
    results
}

/// Test inputs shared by all tests: the Debian kernel, extracted once, and a small initrd.
struct Inputs {
    _dir: tempfile::TempDir,
    kernel: PathBuf,
    initrd: PathBuf,
}

fn inputs() -> &'static Inputs {
    static INPUTS: OnceLock<Inputs> = OnceLock::new();
    INPUTS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let kernel = crate::util::debian_kernel().to_owned();
        // A small newc cpio: one regular file "init" holding a fixed script, then TRAILER!!!.
        let initrd = dir.path().join("initrd.cpio");
        fs_err::write(&initrd, newc(&[("init", b"#!/bin/sh\nexec /bin/sh\n")])).unwrap();
        Inputs {
            _dir: dir,
            kernel,
            initrd,
        }
    })
}

/// A newc archive of regular files with fixed metadata.
fn newc(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut entry = |ino: u32, mode: u32, name: &str, data: &[u8]| {
        let header = format!(
            "070701{ino:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            0, 0, 1, 0, data.len(), 0, 0, 0, 0, name.len() + 1, 0
        );
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.resize(out.len().next_multiple_of(4), 0);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(4), 0);
    };
    for (i, (name, data)) in files.iter().enumerate() {
        entry(i as u32 + 1, 0o100_755, name, data);
    }
    entry(0, 0, "TRAILER!!!", b"");
    out.resize(out.len().next_multiple_of(512), 0);
    out
}

fn firmware(name: &str) -> String {
    crate::util::fixture("firmware")
        .join(name)
        .display()
        .to_string()
}

/// The direct-boot variants: none, kernel only, kernel + initrd + command line.
fn boots(all: bool) -> Vec<Vec<String>> {
    let i = inputs();
    let k = i.kernel.display().to_string();
    let full = vec![
        "--kernel".into(),
        k.clone(),
        "--initrd".into(),
        i.initrd.display().to_string(),
        "--append".into(),
        CMDLINE.into(),
    ];
    if all {
        vec![vec![], vec!["--kernel".into(), k], full]
    } else {
        vec![vec![], full]
    }
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// `--mode MODE --ovmf OVMF --vcpus VCPUS`, then `rest`.
fn launch(mode: &str, ovmf: &str, vcpus: &str, rest: &[&str]) -> Vec<String> {
    let mut a = args(&["--mode", mode, "--ovmf", ovmf, "--vcpus", vcpus]);
    a.extend(args(rest));
    a
}

/// Builds the matrix: the full cross product on the AmdSev firmware, a subset on the others.
fn matrix() -> Vec<Vec<String>> {
    let mut cases = Vec::new();
    let amd = firmware(AMDSEV);
    for boot in boots(true) {
        for t in VCPU_TYPES {
            for vcpus in ["1", "4"] {
                for vmm in ["QEMU", "ec2", "gce"] {
                    for gf in ["0x1", "0x21"] {
                        let mut a = args(&["--mode", "snp", "--ovmf", &amd, "--vcpus", vcpus]);
                        a.extend(args(&[
                            "--vcpu-type",
                            t,
                            "--vmm-type",
                            vmm,
                            "--guest-features",
                            gf,
                        ]));
                        a.extend(boot.clone());
                        cases.push(a);
                    }
                    // SEV-ES ignores guest features; one value is enough.
                    let mut a = args(&["--mode", "seves", "--ovmf", &amd, "--vcpus", vcpus]);
                    a.extend(args(&["--vcpu-type", t, "--vmm-type", vmm]));
                    a.extend(boot.clone());
                    cases.push(a);
                }
            }
        }
        let mut a = args(&["--mode", "sev", "--ovmf", &amd]);
        a.extend(boot.clone());
        cases.push(a);
    }
    // Every vCPU model name and alias the reference knows, and the other ways to give a
    // signature, on one SNP launch each.
    let aliases = [
        "EPYC-v1",
        "EPYC-v2",
        "EPYC-IBPB",
        "EPYC-v3",
        "EPYC-v4",
        "EPYC-Rome-v1",
        "EPYC-Rome-v2",
        "EPYC-Rome-v3",
        "EPYC-Milan-v1",
        "EPYC-Milan-v2",
        "EPYC-Genoa-v1",
    ];
    for t in aliases {
        cases.push(launch("snp", &amd, "2", &["--vcpu-type", t]));
    }
    for (f, m, s) in [
        ("25", "1", "1"),
        ("26", "17", "3"),
        ("15", "4", "1"),
        ("23", "113", "0"),
    ] {
        let family = ["--vcpu-family", f, "--vcpu-model", m, "--vcpu-stepping", s];
        cases.push(launch("snp", &amd, "3", &family));
    }
    for sig in ["0xa10f11", "8392465", "0x0"] {
        cases.push(launch("snp", &amd, "2", &["--vcpu-sig", sig]));
    }
    // SEV-ES ignores --guest-features (its VMSAs carry SEV_FEATURES 0).
    for vmm in ["QEMU", "ec2"] {
        let rest = [
            "--vcpu-type",
            "EPYC-Milan",
            "--vmm-type",
            vmm,
            "--guest-features",
            "0x21",
        ];
        cases.push(launch("seves", &amd, "2", &rest));
    }
    // ec2/gce need no vCPU model; QEMU does.
    for vmm in ["ec2", "gce", "QEMU"] {
        cases.push(launch("snp", &amd, "2", &["--vmm-type", vmm]));
    }
    // Output formats and the OVMF-hash shortcut (seed given as input: the AmdSev OVMF hash,
    // and a different firmware's, to show the firmware pages are then not hashed).
    for fmt in ["hex", "base64"] {
        for mode in ["snp", "seves", "sev", "snp:ovmf-hash"] {
            let rest = ["--vcpu-type", "EPYC-Genoa", "--output-format", fmt];
            cases.push(launch(mode, &amd, "2", &rest));
        }
    }
    for seed in [
        "9d0dd8be18c86e3fe3bf0038ed75ebf5340bee69fd2632c8ff9409964575960ae1f7e84be387d2e3467bc3508d1e4806",
        "ba2c811512ef868474f239a21f7d7057d65a20de87a003c4f116e4fb1573183bfbcd75c3e99b2f558575a5d0094f73c6",
    ] {
        for boot in boots(false) {
            let mut a = args(&["--mode", "snp", "--ovmf", &amd, "--vcpus", "4", "--vcpu-type"]);
            a.extend(args(&["EPYC-Milan", "--snp-ovmf-hash", seed]));
            a.extend(boot);
            cases.push(a);
        }
    }
    // The other firmware: SNP needs no kernel-hashes section without a kernel, and must be
    // refused with one; the TDX build has zero-size SEV sections.
    for fw in OTHER_FIRMWARE.map(firmware) {
        cases.push(args(&["--mode", "snp:ovmf-hash", "--ovmf", &fw]));
        for boot in boots(false) {
            for t in ["EPYC-Milan", "EPYC-Genoa"] {
                for vcpus in ["1", "4"] {
                    for vmm in ["QEMU", "ec2", "gce"] {
                        let mut a = args(&["--mode", "snp", "--ovmf", &fw, "--vcpus", vcpus]);
                        a.extend(args(&["--vcpu-type", t, "--vmm-type", vmm]));
                        a.extend(boot.clone());
                        cases.push(a);
                    }
                    let mut a = args(&["--mode", "seves", "--ovmf", &fw, "--vcpus", vcpus]);
                    a.extend(args(&["--vcpu-type", t]));
                    a.extend(boot.clone());
                    cases.push(a);
                }
            }
            let mut a = args(&["--mode", "sev", "--ovmf", &fw]);
            a.extend(boot);
            cases.push(a);
        }
    }
    cases
}

#[test]
fn matrix_matches_sev_snp_measure() {
    let cases = matrix();
    let expected = reference(&cases);
    let mut failures = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for (case, want) in cases.iter().zip(&expected) {
        let got = ours(case);
        match (want.rc, &got) {
            (0, Ok(out)) if *out == want.out => accepted += 1,
            (rc, Err(_)) if rc != 0 => refused += 1,
            _ => failures.push(format!(
                "args: {}\n  sev-snp-measure: rc={} out={:?} err={:?}\n  ours: {got:?}",
                case.join(" "),
                want.rc,
                want.out.trim(),
                want.err.trim()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from sev-snp-measure 0.0.13:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // Both outcomes must actually be exercised.
    assert!(
        accepted > 300 && refused > 30,
        "accepted {accepted}, refused {refused}"
    );
}

/// The README's public vectors, through the real `sev-snp-measure` console script.
#[test]
fn public_vectors_via_console_script() {
    let i = inputs();
    let amd = firmware(AMDSEV);
    let kernel = i.kernel.display().to_string();
    let cases: [(Vec<String>, &str); 3] = [
        (
            args(&["--mode", "snp", "--vcpus", "4", "--vcpu-type", "EPYC-Milan", "--ovmf", &amd]),
            "c995d6122aacbc0434128f0c63783f03b7caec3f8f4292948522a00c0395ff126f1633d8346a20aa85f8dd3bd8739a38",
        ),
        (
            args(&[
                "--mode", "snp", "--vcpus", "4", "--vcpu-type", "EPYC-Milan", "--ovmf", &amd,
                "--kernel", &kernel, "--append", CMDLINE,
            ]),
            "cba714500f0cbb162d73816b6bcf94a42c0de456696eaed69db1924895e97a4e36a4d4903e3de6388180160a8bc6d17b",
        ),
        (
            args(&["--mode", "snp:ovmf-hash", "--ovmf", &amd]),
            "9d0dd8be18c86e3fe3bf0038ed75ebf5340bee69fd2632c8ff9409964575960ae1f7e84be387d2e3467bc3508d1e4806",
        ),
    ];
    for (a, digest) in cases {
        let out = Command::new("sev-snp-measure")
            .args(&a)
            .output()
            .expect("the sev-snp-measure console script must be on PATH (pip install sev-snp-measure==0.0.13)");
        assert!(
            out.status.success(),
            "sev-snp-measure {a:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            digest,
            "reference vector moved"
        );
        assert_eq!(ours(&a).unwrap().trim(), digest, "args {a:?}");
    }
}

#[test]
fn json_output() {
    let a = args(&[
        "--mode",
        "snp:ovmf-hash",
        "--ovmf",
        &firmware(AMDSEV),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&ours(&a).unwrap()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "mode": "snp:ovmf-hash",
            "measurement": "9d0dd8be18c86e3fe3bf0038ed75ebf5340bee69fd2632c8ff9409964575960ae1f7e84be387d2e3467bc3508d1e4806"
        })
    );
}

/// The transcript of a 2-vCPU Milan launch on the AmdSev firmware without a kernel. Its last
/// line is the digest, checked against the reference; the rest is a reviewed snapshot.
#[test]
fn transcript_snapshot() {
    let mut a = args(&["--mode", "snp", "--ovmf", &firmware(AMDSEV), "--vcpus", "2"]);
    a.extend(args(&["--vcpu-type", "EPYC-Milan"]));
    let want = reference(std::slice::from_ref(&a)).remove(0);
    assert_eq!(want.rc, 0, "{}", want.err);
    a.push("--transcript".into());
    let got = ours(&a).unwrap();
    assert!(
        got.ends_with(&want.out),
        "transcript must end with the reference digest"
    );
    insta::assert_snapshot!(got);
}

#[test]
fn usage_errors() {
    let amd = firmware(AMDSEV);
    for (a, needle) in [
        (
            args(&["--mode", "snp", "--ovmf", &amd, "--vcpu-type", "EPYC"]),
            "--vcpus",
        ),
        (
            args(&["--mode", "snp", "--ovmf", &amd, "--vcpus", "1"]),
            "--vcpu-type",
        ),
        (
            args(&[
                "--mode",
                "snp",
                "--ovmf",
                &amd,
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC-X",
            ]),
            "EPYC-X",
        ),
        (
            args(&["--mode", "sev", "--ovmf", &amd, "--transcript"]),
            "--transcript",
        ),
        (
            args(&[
                "--mode",
                "sev",
                "--ovmf",
                &amd,
                "--snp-ovmf-hash",
                &"0".repeat(96),
            ]),
            "snp-ovmf-hash",
        ),
        (
            args(&[
                "--mode",
                "snp",
                "--ovmf",
                "/nonexistent/OVMF.fd",
                "--vcpus",
                "1",
            ]),
            "/nonexistent/OVMF.fd",
        ),
        (
            args(&[
                "--mode", "snp", "--ovmf", &amd, "--vcpus", "1", "--initrd", "x",
            ]),
            "--kernel",
        ),
    ] {
        let err = ours(&a).expect_err(&format!("{a:?} must fail"));
        assert!(
            err.contains(needle),
            "error for {a:?} should mention {needle}: {err}"
        );
    }
}
