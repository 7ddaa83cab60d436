//! An attested client: refuses to send anything to a server whose evidence does not match a
//! release.
//!
//! ```text
//! cargo run -p attested-server --example client -- \
//!     --server 127.0.0.1:8443 --release out/ --input "A man is playing a guitar."
//! ```
//!
//! 1. connects with TLS and notes the key the server presents (no PKI: the server made it);
//! 2. fetches `GET /v1/attestation?nonce=HEX` for 32 fresh random bytes;
//! 3. checks the evidence with the `verifier` crate against `DIR/record.json` (SEV-SNP: VCEK
//!    chain to AMD's pinned roots, signature, launch digest, guest policy, TCB, VMPL; vTPM:
//!    the quote's signature by the AK given with `--tpm-ak`, PCR 4 and 11) and that its
//!    user data (REPORT_DATA, the quote's qualifying data) is the binding of that key and
//!    that nonce;
//! 4. only then posts the embedding request, over a connection that must present the same key.
//!
//! Exit codes: 0 answered; 8 refused (the failed checks are named on stderr); 1 anything else.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

use std::path::PathBuf;

use anyhow::Context as _;
use attested_server::client::{self, ClientError, Expectation};
use clap::Parser;

/// Checks a server's attestation against a release, then sends one embedding request.
#[derive(Parser)]
struct Cli {
    /// The server, HOST:PORT.
    #[arg(long)]
    server: String,
    /// The release directory (holds record.json).
    #[arg(long, value_name = "DIR")]
    release: PathBuf,
    /// The record's profile for the evidence's platform (default: its only one).
    #[arg(long)]
    profile: Option<String>,
    /// The chip's VCEK (DER or PEM), when the server does not send one.
    #[arg(long, value_name = "FILE")]
    vcek: Option<PathBuf>,
    /// vTPM: the attestation key to trust (public key, PEM or DER), from the EK certificate
    /// chain or the provider; the key the server sends is never trusted.
    #[arg(long, value_name = "FILE")]
    tpm_ak: Option<PathBuf>,
    /// The VMPL the report must come from.
    #[arg(long, default_value_t = 0)]
    vmpl: u32,
    /// The text to embed.
    #[arg(long, default_value = "hello from an attested client")]
    input: String,
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let record_path = cli.release.join("record.json");
    let record = serde_json::from_slice(&fs_err::read(&record_path)?)
        .with_context(|| format!("{} is not a build record", record_path.display()))?;
    let vcek = cli.vcek.as_ref().map(fs_err::read).transpose()?;
    let expect = Expectation {
        record,
        profile: cli.profile.clone(),
        anchors: verifier::snp::TrustAnchors::amd(),
        policy: verifier::snp::SnpPolicy {
            vmpl: cli.vmpl,
            ..Default::default()
        },
        vcek,
        tpm_ak: cli.tpm_ak.as_ref().map(fs_err::read).transpose()?,
    };
    let mut nonce = [0u8; 32];
    fs_err::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut nonce))
        .context("reading a nonce from /dev/urandom")?;
    let body = serde_json::json!({ "input": cli.input })
        .to_string()
        .into_bytes();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (attested, reply) = rt.block_on(client::attested_request(
        &cli.server,
        &expect,
        &nonce,
        client::post_json("/v1/embeddings", body),
    ))?;
    eprint!("{}", attested.verdict);
    eprintln!("attested: server key bound by the evidence; request sent");
    println!("{}", String::from_utf8_lossy(&reply.body));
    anyhow::ensure!(reply.status == 200, "the server answered {}", reply.status);
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("client: {e:#}");
            let refused = matches!(
                e.downcast_ref::<ClientError>(),
                Some(ClientError::Refused(_) | ClientError::KeyChanged)
            );
            std::process::ExitCode::from(if refused { 8 } else { 1 })
        }
    }
}
