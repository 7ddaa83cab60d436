//! `demo-server`: loads the model, binds, prints one ready line, serves until killed.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// An OpenAI-style embedding server for all-MiniLM-L6-v2.
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
    let listener =
        TcpListener::bind(&cli.listen).with_context(|| format!("binding {}", cli.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let mut stderr = std::io::stderr();
    let _ = writeln!(stderr, "demo-server: listening on {addr}");
    demo_server::serve(&listener, embedder).context("serving")?;
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
