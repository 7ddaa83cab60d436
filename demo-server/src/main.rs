//! `demo-server`: loads the model, makes its TLS key, binds, prints one ready line, serves
//! HTTPS until killed.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use attested_server::{ConfigfsTsm, Server, TlsIdentity, VtpmQuote};
use clap::Parser;

/// An OpenAI-style embedding server for all-MiniLM-L6-v2, over HTTPS with a key made at
/// start and bound into the platform's attestation evidence (GET /v1/attestation?nonce=HEX).
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Directory holding config.json, tokenizer.json and model.safetensors.
    #[arg(long)]
    model_dir: PathBuf,
    /// Address to listen on (port 0 picks a free port; the ready line names it).
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: String,
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let embedder = demo_server::Embedder::load(&cli.model_dir)
        .with_context(|| format!("loading the model from {}", cli.model_dir.display()))?;
    let identity = TlsIdentity::generate().context("making the TLS key")?;
    // The TEE's report when the kernel has a TSM provider (the entry the init handed over,
    // else the report directory), else the vTPM, else none (the endpoint answers 503).
    let evidence = attested_server::detect(
        &[
            Path::new(ConfigfsTsm::WORKLOAD_ENTRY),
            Path::new(ConfigfsTsm::DEFAULT_ROOT),
        ],
        Path::new(VtpmQuote::DEFAULT_PATH),
    );
    let server = Server::new(
        &identity,
        evidence.source,
        Arc::new(demo_server::EmbeddingsApp::new(embedder)),
        demo_server::limits(),
    )
    .context("configuring TLS")?;
    let listener =
        TcpListener::bind(&cli.listen).with_context(|| format!("binding {}", cli.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let mut stderr = std::io::stderr();
    let _ = writeln!(stderr, "demo-server: listening on {addr}");
    let key = <sha2::Sha256 as sha2::Digest>::digest(identity.spki_der());
    let _ = writeln!(
        stderr,
        "demo-server: TLS key sha256:{}; attestation evidence: {}",
        hex::encode(key),
        evidence.description
    );
    server.serve_blocking(listener, 2).context("serving")?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "demo-server: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
