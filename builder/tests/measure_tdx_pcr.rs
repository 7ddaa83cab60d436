//! `measure tdx` and `measure pcr` end to end (argument parsing → output), against the TDX
//! spec walk-through script and `systemd-measure calculate` (systemd 252), plus a reviewed
//! snapshot of a `--transcript`.

use std::path::{Path, PathBuf};
use std::process::Command;

use builder::cli::{PcrArgs, TdxArgs};
use builder::measure::pcr::run_pcr;
use builder::measure::tdx::run_tdx;
use clap::Parser;

use crate::util::{debian_kernel, fixture, run, scratch, systemd_measure};

#[derive(Parser)]
struct TdxCli {
    #[command(flatten)]
    args: TdxArgs,
}

#[derive(Parser)]
struct PcrCli {
    #[command(flatten)]
    args: PcrArgs,
}

const FW: &str = "firmware/OVMF.inteltdx.ms-2026.08.fd";
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../measurements/tests/vectors/tdx/tdx_reference.py"
);
const CMDLINE: &str = "console=ttyS0 root=/dev/vda1 ro";

fn tdx(argv: &[&str]) -> String {
    let cli = TdxCli::try_parse_from(std::iter::once("tdx").chain(argv.iter().copied())).unwrap();
    let mut out = Vec::new();
    run_tdx(&cli.args.into(), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn pcr(argv: &[&str]) -> String {
    let cli = PcrCli::try_parse_from(std::iter::once("pcr").chain(argv.iter().copied())).unwrap();
    let mut out = Vec::new();
    run_pcr(&cli.args.into(), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// The value printed after `name` on its own line (`MRTD  <hex>`) or `key=value` line.
fn field(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(name)?;
            rest.strip_prefix('=')
                .or_else(|| rest.starts_with(' ').then_some(rest))
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no {name} in:\n{out}"))
}

#[test]
fn tdx_cli_matches_reference_script() {
    let dir = scratch("tdx");
    let initrd = dir.join("initrd");
    fs_err::write(
        &initrd,
        (0..9000u32).map(|i| (i % 241) as u8).collect::<Vec<u8>>(),
    )
    .unwrap();
    let fw = fixture(FW);
    let (fw, k, i) = (
        fw.to_str().unwrap(),
        debian_kernel().to_str().unwrap(),
        initrd.to_str().unwrap(),
    );
    let reference = run(Command::new("python3").arg(SCRIPT).arg(fw).args([
        "--cmdline",
        CMDLINE,
        "--initrd",
        i,
    ]));

    let single = tdx(&[
        "--ovmf", fw, "--kernel", k, "--initrd", i, "--append", CMDLINE,
    ]);
    assert_eq!(
        field(&single, "MRTD"),
        field(&reference, "mrtd_single_pass")
    );
    assert_eq!(field(&single, "RTMR2"), field(&reference, "rtmr2"));
    assert_eq!(field(&single, "RTMR1").len(), 96);

    let two = tdx(&[
        "--ovmf",
        fw,
        "--kernel",
        k,
        "--initrd",
        i,
        "--append",
        CMDLINE,
        "--two-pass-add-pages",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&two).unwrap();
    assert_eq!(v["mrtd"], field(&reference, "mrtd_two_pass"));
    assert_eq!(v["rtmr2"], field(&reference, "rtmr2"));
    assert_eq!(
        v["rtmr1"],
        field(&single, "RTMR1"),
        "RTMR1 does not depend on the page-add order"
    );

    // Firmware only: MRTD, and no RTMR lines.
    let fw_only = tdx(&["--ovmf", fw]);
    assert_eq!(fw_only.lines().count(), 1, "{fw_only}");
}

/// Reviewed against independent values: the sections match the reference script's `section=`
/// lines (BFV 0x37c000 bytes = 892 pages); MRTD equals `mrtd_single_pass` in
/// measurements/tests/vectors/tdx/ovmf-inteltdx.ms-2026.08.toml; the kernel digest `85ac74…`
/// equals osslsigncode's SHA-384 Authenticode of the same kernel; the separator digest is
/// SHA-384 of four zero bytes (`394341b7…`); RTMR2 equals the vector file's `rtmr2_no_initrd`.
#[test]
fn tdx_transcript_snapshot() {
    let fw = fixture(FW);
    let out = tdx(&[
        "--ovmf",
        fw.to_str().unwrap(),
        "--kernel",
        debian_kernel().to_str().unwrap(),
        "--append",
        CMDLINE,
        "--transcript",
    ]);
    assert!(!out.contains("/work/"), "no host paths in the output");
    insta::assert_snapshot!("tdx_transcript", out);
}

/// Ours (`{"sha256": {"pcr11": {"enter-initrd": ..}}}`) in systemd-measure's shape.
fn phases(ours: &serde_json::Value, bank: &str) -> Vec<String> {
    ["enter-initrd", "leave-initrd", "sysinit", "ready"]
        .iter()
        .map(|p| ours[bank]["pcr11"][p].as_str().unwrap().to_owned())
        .collect()
}

fn reference_phases(reference: &serde_json::Value, bank: &str) -> Vec<String> {
    reference[bank]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["hash"].as_str().unwrap().to_owned())
        .collect()
}

fn section_files(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let mut files = vec![("linux", debian_kernel().to_path_buf())];
    for (flag, data) in [
        ("osrel", b"ID=enclave\n".to_vec()),
        ("cmdline", CMDLINE.as_bytes().to_vec()),
        ("initrd", (0..33_333u32).map(|i| (i % 199) as u8).collect()),
    ] {
        let p = dir.join(flag);
        fs_err::write(&p, data).unwrap();
        files.push((flag, p));
    }
    files
}

#[test]
fn pcr_cli_matches_systemd_measure() {
    let dir = scratch("pcr");
    let files = section_files(&dir);
    let reference = systemd_measure(
        &files
            .iter()
            .map(|(f, p)| (*f, p.as_path()))
            .collect::<Vec<_>>(),
    );
    let mut argv: Vec<String> = files
        .iter()
        .map(|(f, p)| format!("--{f}={}", p.display()))
        .collect();
    argv.extend(["--stub-version=252".to_owned(), "--json".to_owned()]);
    let ours: serde_json::Value =
        serde_json::from_str(&pcr(&argv.iter().map(String::as_str).collect::<Vec<_>>())).unwrap();
    for bank in ["sha256", "sha384"] {
        assert_eq!(
            phases(&ours, bank),
            reference_phases(&reference, bank),
            "{bank}"
        );
    }
    assert!(ours["sha256"].get("pcr4").is_none(), "PCR 4 needs a UKI");

    // Text output, one bank.
    argv.pop();
    argv.push("--bank=sha384".to_owned());
    let text = pcr(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        field(&text, "11:sha384:ready"),
        reference_phases(&reference, "sha384")[3]
    );
    assert!(!text.contains("sha256"));
}

#[test]
fn pcr_cli_on_objcopy_uki_matches_systemd_measure() {
    let dir = scratch("pcr-uki");
    let files = section_files(&dir);
    let uki = dir.join("uki.efi");
    let mut cmd = Command::new("objcopy");
    let mut vma: u64 = 0x1_4e00_0000;
    for (flag, p) in &files {
        cmd.arg("--add-section")
            .arg(format!(".{flag}={}", p.display()));
        cmd.arg("--change-section-vma")
            .arg(format!(".{flag}={vma:#x}"));
        vma += 0x0100_0000;
    }
    run(cmd.arg(fixture("uki/linuxx64.efi.stub-257.13")).arg(&uki));
    let reference = systemd_measure(
        &files
            .iter()
            .map(|(f, p)| (*f, p.as_path()))
            .collect::<Vec<_>>(),
    );
    let uki_arg = format!("--uki={}", uki.display());
    let ours: serde_json::Value =
        serde_json::from_str(&pcr(&[&uki_arg, "--stub-version=252", "--json"])).unwrap();
    for bank in ["sha256", "sha384"] {
        assert_eq!(
            phases(&ours, bank),
            reference_phases(&reference, bank),
            "{bank}"
        );
        assert_eq!(
            ours[bank]["pcr4"].as_str().unwrap().len(),
            if bank == "sha256" { 64 } else { 96 }
        );
    }
    // The 257 stub also measures the stub's own .sbat.
    let v257: serde_json::Value = serde_json::from_str(&pcr(&[&uki_arg, "--json"])).unwrap();
    assert_ne!(
        phases(&v257, "sha256"),
        reference_phases(&reference, "sha256")
    );
    assert_eq!(
        v257["sha256"]["pcr4"], ours["sha256"]["pcr4"],
        "PCR 4 does not depend on the stub version"
    );
}

#[test]
fn tdx_rtmr0_from_platform_profile() {
    use sha2::{Digest, Sha384};
    let dir = scratch("rtmr0");
    let digests: Vec<[u8; 48]> = [&b"td-hob"[..], b"cfv", b"acpi"]
        .iter()
        .map(|d| Sha384::digest(d).into())
        .collect();
    let profile = dir.join("rtmr0.txt");
    let text: String = digests
        .iter()
        .map(|d| format!("{}  # event\n", hex::encode(d)))
        .collect();
    fs_err::write(&profile, format!("# RTMR0 profile\n\n{text}")).unwrap();
    let mut want = [0u8; 48];
    for d in &digests {
        want = Sha384::digest([&want[..], &d[..]].concat()).into();
    }
    let fw = fixture(FW);
    let out = tdx(&[
        "--ovmf",
        fw.to_str().unwrap(),
        "--rtmr0-digests",
        profile.to_str().unwrap(),
    ]);
    assert_eq!(field(&out, "RTMR0"), hex::encode(want));
    // A malformed line is an error naming the file and line.
    fs_err::write(&profile, "abc\n").unwrap();
    let cli = TdxCli::try_parse_from([
        "tdx",
        "--ovmf",
        fw.to_str().unwrap(),
        "--rtmr0-digests",
        profile.to_str().unwrap(),
    ])
    .unwrap();
    let err = format!(
        "{:#}",
        run_tdx(&cli.args.into(), &mut Vec::new()).unwrap_err()
    );
    assert!(err.contains("rtmr0.txt:1"), "{err}");
}

#[test]
fn cli_rejects_bad_combinations_and_inputs() {
    assert!(
        PcrCli::try_parse_from(["pcr"]).is_err(),
        "--uki or --linux is required"
    );
    assert!(PcrCli::try_parse_from(["pcr", "--uki", "a", "--linux", "b"]).is_err());
    assert!(
        TdxCli::try_parse_from(["tdx", "--ovmf", "f", "--initrd", "i"]).is_err(),
        "--initrd needs --kernel"
    );
    // Not a TDVF image: a typed error with context, not a panic.
    let stub = fixture("uki/linuxx64.efi.stub-257.13");
    let cli = TdxCli::try_parse_from(["tdx", "--ovmf", stub.to_str().unwrap()]).unwrap();
    let err = run_tdx(&cli.args.into(), &mut Vec::new()).unwrap_err();
    assert!(format!("{err:#}").contains("TDVF"), "{err:#}");
}
