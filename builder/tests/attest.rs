//! `attest check`: a real SEV-SNP report (virtee/sev test data, see
//! verifier/tests/data/snp/README.md) against releases, through the binary.

use std::path::{Path, PathBuf};

/// The Milan report's own MEASUREMENT and REPORT_DATA (read from its bytes by the test).
fn milan() -> Vec<u8> {
    let hex_text = fs_err::read_to_string(data().join("report_milan.hex")).unwrap();
    hex::decode(hex_text.trim()).unwrap()
}

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../verifier/tests/data/snp")
}

/// A record whose profile `snp-milan` has one measurement per comma-separated launch digest,
/// for 1, 2, 3... vCPUs (a profile measured for several vCPU counts).
fn record(launch_digests: &str) -> String {
    let zero = "0".repeat(64);
    let measurements: Vec<serde_json::Value> = launch_digests
        .split(',')
        .zip(1..)
        .map(|(d, vcpus)| {
            serde_json::json!({"profile": "snp-milan", "firmware_sha256": zero, "platform": {
                "kind": "snp", "vcpus": vcpus, "vmm": "qemu", "vcpu_type": "EPYC-Milan",
                "guest_features": 1, "launch_digest": d}})
        })
        .collect();
    serde_json::json!({
        "schema": "enclave-builder.record.v1",
        "builder": {"name": "enclave-builder", "version": "0.1.0"},
        "image": {"name": "t", "version": "1"},
        "manifest_sha256": zero,
        "source_date_epoch": 0,
        "inputs": [],
        "outputs": [],
        "rootfs": {"filesystem": "erofs", "uuid": "u", "data_size": 0, "verity": {
            "hash_algorithm": "sha256", "root_hash": zero, "salt": "", "data_block_size": 4096,
            "hash_block_size": 4096, "data_blocks": 0, "hash_blocks": 0, "hash_offset": 0,
            "uuid": "u"}},
        "kernel_cmdline": {"verity_fragment": "", "full": ""},
        "measurements": measurements
    })
    .to_string()
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn attest(launch_digest: &str, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release");
    let certs = dir.path().join("certs");
    fs_err::create_dir_all(&release).unwrap();
    fs_err::create_dir_all(&certs).unwrap();
    fs_err::write(release.join("record.json"), record(launch_digest)).unwrap();
    fs_err::copy(data().join("vcek_milan.der"), certs.join("vcek.der")).unwrap();
    fs_err::copy(
        data().join("cert_chain_milan"),
        certs.join("cert_chain.pem"),
    )
    .unwrap();
    fs_err::write(dir.path().join("report.bin"), milan()).unwrap();
    // Any key will do: the report is someone else's, so its binding cannot match ours.
    let key = dir.path().join("server.der");
    fs_err::copy(data().join("vcek_milan.der"), &key).unwrap();
    let out = crate::util::bin()
        .args(["attest", "check", "--release"])
        .arg(&release)
        .arg("--evidence")
        .arg(dir.path().join("report.bin"))
        .arg("--certs")
        .arg(&certs)
        .args([
            "--nonce",
            "00112233445566778899aabbccddeeff",
            "--server-key",
        ])
        .arg(&key)
        .args(extra)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn failed_checks(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn genuine_report_of_this_release_fails_only_the_binding() {
    let own = hex::encode(&milan()[0x90..0xC0]);
    let run = attest(&own, &["--json"]);
    assert_eq!(run.code, 8, "{}{}", run.stdout, run.stderr);
    assert_eq!(failed_checks(&run.stdout), ["snp.report_data"]);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["profile"], "snp-milan");
    // Every check is named with expected and actual.
    for c in v["checks"].as_array().unwrap() {
        assert!(c["expected"].is_string() && c["actual"].is_string(), "{c}");
    }
}

#[test]
fn genuine_report_of_another_image_fails_the_measurement() {
    let run = attest(&"ab".repeat(48), &[]);
    assert_eq!(run.code, 8, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("ok   snp.signature: valid"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("ok   snp.chain.ark"), "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!(
            "FAIL snp.measurement: expected {}",
            "ab".repeat(48)
        )),
        "{}",
        run.stdout
    );
    assert!(run
        .stdout
        .ends_with("attestation vs profile snp-milan: FAILED\n"));
    assert!(
        run.stderr.contains("snp.measurement, snp.report_data"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_profile_with_several_vcpu_counts_accepts_any_of_its_digests() {
    let own = hex::encode(&milan()[0x90..0xC0]);
    let (a, b) = ("ab".repeat(48), "cd".repeat(48));
    // The report's digest is the profile's 2-vCPU entry: the measurement passes, named so.
    let run = attest(&format!("{a},{own},{b}"), &["--json"]);
    assert_eq!(run.code, 8, "{}{}", run.stdout, run.stderr);
    assert_eq!(failed_checks(&run.stdout), ["snp.report_data"]);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["profile"], "snp-milan (2 vCPUs)");
    // None of the counts has it: the measurement fails.
    let run = attest(&format!("{a},{b}"), &["--json"]);
    assert_eq!(run.code, 8, "{}{}", run.stdout, run.stderr);
    assert!(
        failed_checks(&run.stdout).contains(&"snp.measurement".to_owned()),
        "{}",
        run.stdout
    );
}

#[test]
fn bad_inputs_name_the_input() {
    // Each case: the arguments, and what the error must say.
    for (args, needle) in [
        (
            ["--profile", "tdx"],
            "no SEV-SNP profile \"tdx\" (SEV-SNP profiles: snp-milan)",
        ),
        (["--min-tcb", "snp=x"], "--min-tcb"),
        (["--kind", "tdx"], "pass --collateral FILE"),
        (["--kind", "tpm"], "pass --signature FILE"),
    ] {
        let run = attest(&"ab".repeat(48), &args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn tcb_policy_is_applied() {
    let own = hex::encode(&milan()[0x90..0xC0]);
    // The report's TCB is bootloader 3, TEE 0, SNP 8, microcode 115.
    let run = attest(&own, &["--json", "--min-tcb", "snp=9"]);
    assert_eq!(failed_checks(&run.stdout), ["snp.tcb", "snp.report_data"]);
    let run = attest(
        &own,
        &[
            "--json",
            "--min-tcb",
            "bootloader=3,tee=0,snp=8,microcode=115",
            "--smt",
            "on",
        ],
    );
    assert_eq!(failed_checks(&run.stdout), ["snp.report_data"]);
}

/// TDX: dcap-qvl's sample quote and collateral (verifier/tests/data/tdx/README.md).
#[test]
fn tdx_quote_of_this_release_fails_only_the_binding() {
    let tdx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../verifier/tests/data/tdx");
    let quote = fs_err::read(tdx.join("tdx_quote")).unwrap();
    // Body at 48: MRTD +136, RTMR1 +376, RTMR2 +424 (Intel's TD quote body layout).
    let field = |off: usize| hex::encode(&quote[48 + off..48 + off + 48]);
    let mut rec: serde_json::Value = serde_json::from_str(&record(&"ab".repeat(48))).unwrap();
    rec["measurements"].as_array_mut().unwrap().push(
        serde_json::json!({"profile": "tdx-qemu", "firmware_sha256": "0".repeat(64),
        "platform": {"kind": "tdx", "page_add_order": "single-pass", "mrtd": field(136),
        "rtmr1": field(376), "rtmr2": field(424)}}),
    );
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("record.json"), rec.to_string()).unwrap();
    let key = data().join("vcek_milan.der");
    let run = |extra: &[&str]| {
        let out = crate::util::bin()
            .args(["attest", "check", "--json", "--release"])
            .arg(dir.path())
            .arg("--evidence")
            .arg(tdx.join("tdx_quote"))
            .arg("--collateral")
            .arg(tdx.join("tdx_quote_collateral.json"))
            .args(["--nonce", "00", "--server-key"])
            .arg(&key)
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).unwrap(),
        )
    };
    // 2025-07-01: inside the collateral's validity.
    let (code, stdout) = run(&["--time", "1751328000"]);
    assert_eq!(code, 8, "{stdout}");
    assert_eq!(failed_checks(&stdout), ["tdx.report_data"], "{stdout}");
    // A declared platform profile: the quote's own RTMR0 (body +328) passes, another fails by
    // name; a malformed value is refused before any check (exit 1, naming the flag).
    let (code, stdout) = run(&["--time", "1751328000", "--rtmr0", &field(328)]);
    assert_eq!(code, 8, "{stdout}");
    assert_eq!(failed_checks(&stdout), ["tdx.report_data"], "{stdout}");
    let mut other = quote[48 + 328..48 + 376].to_vec();
    other[0] ^= 1;
    let (code, stdout) = run(&["--time", "1751328000", "--rtmr0", &hex::encode(other)]);
    assert_eq!(code, 8, "{stdout}");
    assert_eq!(
        failed_checks(&stdout),
        ["tdx.rtmr0", "tdx.report_data"],
        "{stdout}"
    );
    let (code, _) = run(&["--time", "1751328000", "--rtmr0", "abc"]);
    assert_eq!(code, 1);
    // A year later the collateral has expired.
    let (code, stdout) = run(&["--time", "1782864000"]);
    assert_eq!(code, 8);
    assert!(
        failed_checks(&stdout).contains(&"tdx.signature".to_string()),
        "{stdout}"
    );
}
