//! `VtpmQuote` against a real TPM: swtpm (libtpms) on 127.0.0.1, spoken to with raw TPM 2.0
//! commands over TCP. The quotes must pass `verifier::tpm` with PCR values computed here
//! independently (SHA-256 extend from zero) and tpm2-tools' own `tpm2_checkquote`; the AK must
//! be the key `tpm2_createprimary` makes from the same template.

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use attested_server::tpm2::{Hierarchy, PcrSelection, Tpm};
use attested_server::{EvidenceSource, Platform, VtpmQuote, TPM_AK, TPM_SIGNATURE};
use sha2::{Digest as _, Sha256};
use verifier::tpm::{TpmEvidence, TpmRelease};

/// A swtpm process with its state in a temporary directory; killed on drop.
struct SwTpm {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SwTpm {
    /// Starts swtpm with its server port P and control port P+1 on 127.0.0.1 (the layout
    /// tpm2-tools' `swtpm` TCTI expects), started (`startup-clear`).
    fn start() -> Self {
        for _ in 0..20 {
            let port = free_port_pair();
            let dir = tempfile::tempdir().unwrap();
            let child = Command::new("swtpm")
                .args(["socket", "--tpm2", "--tpmstate"])
                .arg(format!("dir={}", dir.path().display()))
                .args(["--server"])
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .args(["--ctrl"])
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
                .args(["--flags", "not-need-init,startup-clear"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("swtpm (Debian package swtpm) must be installed");
            let mut tpm = Self { child, port, dir };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if tpm.child.try_wait().unwrap().is_some() {
                    // Lost the race for the port: try another.
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    // swtpm serves one connection at a time: this probe must close first.
                    std::thread::sleep(Duration::from_millis(50));
                    return tpm;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = tpm.child.kill();
        }
        panic!("swtpm did not start");
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    }

    /// `TPM2TOOLS_TCTI` for this swtpm.
    fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }
}

impl Drop for SwTpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port P with P and P+1 free on 127.0.0.1 (at the time of asking).
fn free_port_pair() -> u16 {
    loop {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p < u16::MAX && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

/// SHA-256 PCR extend from zero, computed here (TPM 2.0 Part 1: new = H(old || digest)).
fn extended(digests: &[[u8; 32]]) -> [u8; 32] {
    digests.iter().fold([0u8; 32], |pcr, d| {
        let mut h = Sha256::new();
        h.update(pcr);
        h.update(d);
        h.finalize().into()
    })
}

fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Runs a tpm2-tools command; returns whether it succeeded, with its output for messages.
fn tool(args: &[&str], tcti: Option<&str>) -> (bool, String) {
    let mut c = Command::new(args[0]);
    c.args(&args[1..]);
    if let Some(t) = tcti {
        c.env("TPM2TOOLS_TCTI", t);
    }
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("{} (Debian package tpm2-tools): {e}", args[0]));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    fs_err::File::create(&path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
    path.display().to_string()
}

/// The whole path: PCRs 4 and 11 extended with known digests, a quote through
/// `VtpmQuote` over TCP, and two independent checks of it.
#[test]
fn swtpm_quote_passes_the_verifier_and_tpm2_checkquote() {
    let swtpm = SwTpm::start();
    let stream = swtpm.connect();
    // Stand-ins for a measured boot, extended with this crate's TPM2_PCR_Extend; the
    // expected values are computed here, so a wrong extend command fails the digest check.
    let pcr4_events = [sha256(b"uki"), sha256(b"uki .linux")];
    let pcr11_events = [sha256(b".linux"), sha256(b".initrd"), sha256(b".cmdline")];
    {
        let mut tpm = Tpm::new(&stream);
        for d in &pcr4_events {
            tpm.pcr_extend(4, d).unwrap();
        }
        for d in &pcr11_events {
            tpm.pcr_extend(11, d).unwrap();
        }
    }
    let (pcr4, pcr11) = (extended(&pcr4_events), extended(&pcr11_events));

    let source = VtpmQuote::new(stream);
    let server_spki = b"a server key, as SubjectPublicKeyInfo DER";
    let nonce = [0x5a; 32];
    let binding = verifier::binding::report_data(server_spki, &nonce);
    let qualifying = verifier::binding::tpm_qualifying_data(&binding);
    let ev = source.evidence(&binding).unwrap();
    assert_eq!(ev.platform, Platform::Tpm);
    assert_eq!(ev.certificates.len(), 2, "{:?}", ev.certificates.keys());
    let signature = &ev.certificates[TPM_SIGNATURE];
    let ak = &ev.certificates[TPM_AK];

    // The same AK every time (a primary key: seed + template); another hierarchy, another key.
    assert_eq!(&source.ak_spki_der().unwrap(), ak);

    let release = TpmRelease {
        profile: "test".to_owned(),
        pcr4,
        pcr11,
        other: Default::default(),
    };
    let evidence = TpmEvidence {
        attest: &ev.evidence,
        signature,
        ak,
    };
    let v = verifier::tpm::verify(&evidence, &release, &qualifying);
    assert!(v.passed(), "{:#?}", v.failures().collect::<Vec<_>>());
    let names: Vec<&str> = v.checks().iter().map(|c| c.name.as_str()).collect();
    for want in [
        "tpm.signature",
        "tpm.nonce",
        "tpm.pcr_selection",
        "tpm.pcr_digest",
    ] {
        assert!(names.contains(&want), "{want} not checked: {names:?}");
    }

    // tpm2-tools' check of the same bytes: signature by the PEM key, nonce, PCR values
    // (tpm2_pcrread's raw format: the digests in PCR order, with -l naming them).
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let msg = write(d, "quote.msg", &ev.evidence);
    let sig = write(d, "quote.sig", signature);
    let ak_pem = write(d, "ak.pem", pem("PUBLIC KEY", ak).as_bytes());
    let pcrs = write(d, "pcrs.bin", &[pcr4, pcr11].concat());
    let checkquote = |q: &str, pcrs: &str| {
        tool(
            &[
                "tpm2_checkquote",
                "-u",
                &ak_pem,
                "-m",
                &msg,
                "-s",
                &sig,
                "-f",
                pcrs,
                "-l",
                "sha256:4,11",
                "-g",
                "sha256",
                "-q",
                q,
            ],
            None,
        )
    };
    let (ok, out) = checkquote(&hex::encode(qualifying), &pcrs);
    assert!(ok, "tpm2_checkquote refused the quote: {out}");
    // The reference check can fail: another nonce, other PCR values.
    let (ok, _) = checkquote(&hex::encode([0u8; 32]), &pcrs);
    assert!(!ok, "tpm2_checkquote accepted a wrong nonce");
    let wrong_pcrs = write(d, "wrong.bin", &[pcr4, pcr4].concat());
    let (ok, _) = checkquote(&hex::encode(qualifying), &wrong_pcrs);
    assert!(!ok, "tpm2_checkquote accepted wrong PCR values");

    // Negative: the quote answers this binding only.
    let other = verifier::binding::report_data(server_spki, &[0x5b; 32]);
    let v = verifier::tpm::verify(
        &evidence,
        &release,
        &verifier::binding::tpm_qualifying_data(&other),
    );
    let failed: Vec<&str> = v.failures().map(|c| c.name.as_str()).collect();
    assert_eq!(failed, ["tpm.nonce"]);

    // Negative: one flipped bit in the signed bytes (in firmwareVersion, 52 to 60 bytes
    // before the end: it still parses).
    let mut flipped = ev.evidence.clone();
    let at = flipped.len() - 60;
    flipped[at] ^= 0x01;
    let v = verifier::tpm::verify(
        &TpmEvidence {
            attest: &flipped,
            ..evidence
        },
        &release,
        &qualifying,
    );
    let failed: Vec<&str> = v.failures().map(|c| c.name.as_str()).collect();
    assert!(failed.contains(&"tpm.signature"), "{failed:?}");

    // Negative: a PCR that moved after the release fails the digest.
    let v = verifier::tpm::verify(
        &evidence,
        &TpmRelease {
            pcr11: pcr4,
            ..release.clone()
        },
        &qualifying,
    );
    let failed: Vec<&str> = v.failures().map(|c| c.name.as_str()).collect();
    assert_eq!(failed, ["tpm.pcr_digest"]);
}

/// The AK template against tpm2-tools: `tpm2_createprimary` with the same algorithm, scheme
/// and attributes under the endorsement hierarchy must give the same public key; and the
/// owner hierarchy gives another one.
#[test]
fn the_ak_is_the_key_tpm2_createprimary_makes_from_the_same_template() {
    let swtpm = SwTpm::start();
    let ours = VtpmQuote::new(swtpm.connect()).ak_spki_der().unwrap();
    let owner = VtpmQuote::new(swtpm.connect())
        .with_hierarchy(Hierarchy::Owner)
        .ak_spki_der()
        .unwrap();
    assert_ne!(ours, owner, "the hierarchy's seed goes into the key");
    let dir = swtpm.dir.path().to_owned();
    let ctx = dir.join("ak.ctx").display().to_string();
    let pem_path = dir.join("ak.pem").display().to_string();
    let tcti = swtpm.tcti();
    let (ok, out) = tool(
        &[
            "tpm2_createprimary",
            "-C",
            "e",
            "-G",
            "ecc256:ecdsa-sha256:null",
            "-g",
            "sha256",
            "-a",
            "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign",
            "-c",
            &ctx,
        ],
        Some(&tcti),
    );
    assert!(ok, "tpm2_createprimary: {out}");
    let (ok, out) = tool(
        &["tpm2_readpublic", "-c", &ctx, "-f", "pem", "-o", &pem_path],
        Some(&tcti),
    );
    assert!(ok, "tpm2_readpublic: {out}");
    let theirs = fs_err::read_to_string(&pem_path).unwrap();
    assert_eq!(theirs, pem("PUBLIC KEY", &ours));
}

/// PCR selections other than the default are quoted as asked (here 0, 4, 11), and the
/// verifier then needs a value for the extra PCR.
#[test]
fn a_wider_selection_is_quoted() {
    let swtpm = SwTpm::start();
    let source = VtpmQuote::new(swtpm.connect()).with_pcrs(PcrSelection::new(&[0, 4, 11]).unwrap());
    let binding = [7u8; 64];
    let ev = source.evidence(&binding).unwrap();
    let zero = [0u8; 32];
    let release = TpmRelease {
        profile: "test".to_owned(),
        pcr4: zero,
        pcr11: zero,
        other: [(0, zero)].into(),
    };
    let evidence = TpmEvidence {
        attest: &ev.evidence,
        signature: &ev.certificates[TPM_SIGNATURE],
        ak: &ev.certificates[TPM_AK],
    };
    let v = verifier::tpm::verify(&evidence, &release, &binding[..32]);
    assert!(v.passed(), "{:#?}", v.failures().collect::<Vec<_>>());
    let v = verifier::tpm::verify(
        &evidence,
        &TpmRelease {
            other: Default::default(),
            ..release
        },
        &binding[..32],
    );
    let failed: Vec<&str> = v.failures().map(|c| c.name.as_str()).collect();
    assert_eq!(failed, ["tpm.pcr_selection", "tpm.pcr_digest"]);
}

/// The attested client against a server whose evidence is `VtpmQuote` over swtpm: accepted
/// with the AK pinned, refused with another AK, and not even tried without one.
#[test]
fn the_client_attests_a_vtpm_server_with_a_pinned_ak() {
    use attested_server::client::{self, ClientError, Expectation};
    use attested_server::Limits;
    use measurements::record::{PlatformMeasurement, ProfileMeasurement};

    let swtpm = SwTpm::start();
    let stream = swtpm.connect();
    let (e4, e11) = (sha256(b"boot option, uki"), sha256(b".linux .cmdline"));
    {
        let mut tpm = Tpm::new(&stream);
        tpm.pcr_extend(4, &e4).unwrap();
        tpm.pcr_extend(11, &e11).unwrap();
    }
    // Another key the client might wrongly trust: the same TPM's owner-hierarchy AK.
    let other_ak = VtpmQuote::new(&stream)
        .with_hierarchy(Hierarchy::Owner)
        .ak_spki_der()
        .unwrap();
    let source = VtpmQuote::new(stream);
    let ak = source.ak_spki_der().unwrap();
    let mut record = crate::util::demo_record();
    record.measurements.push(ProfileMeasurement {
        profile: "vtpm-test".to_owned(),
        firmware_sha256: measurements::Sha256Digest([0; 32]),
        platform: PlatformMeasurement::Vtpm {
            uki: "uki-vtpm-test.efi".to_owned(),
            uki_sha256: measurements::Sha256Digest([0; 32]),
            pcr4: measurements::Sha256Digest(extended(&[e4])),
            pcr11: measurements::Sha256Digest(extended(&[e11])),
        },
    });
    let server = crate::util::start(std::sync::Arc::new(source), Limits::default());
    let mut expect = Expectation {
        record,
        profile: Some("vtpm-test".to_owned()),
        anchors: crate::util::test_anchors(),
        policy: Default::default(),
        vcek: None,
        tpm_ak: Some(ak),
    };
    let rt = crate::util::client_rt();
    let nonce = [0x42; 32];
    let run = |expect: &Expectation| {
        rt.block_on(client::attested_request(
            &server.addr,
            expect,
            &nonce,
            client::post_json("/v1/words", br#"{"input": "a b"}"#.to_vec()),
        ))
    };
    let (attested, reply) = run(&expect).unwrap();
    assert!(attested.verdict.passed());
    assert_eq!(attested.spki_der, server.spki);
    assert_eq!(reply.status, 200);

    expect.tpm_ak = Some(other_ak);
    match run(&expect) {
        Err(ClientError::Refused(v)) => {
            let failed: Vec<&str> = v.failures().map(|c| c.name.as_str()).collect();
            assert_eq!(failed, ["tpm.signature"]);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    expect.tpm_ak = None;
    assert!(matches!(run(&expect), Err(ClientError::Release(_))));
}
